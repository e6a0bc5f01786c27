import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

extension HTTPAPITests {
    /// Concurrent readers against a writer: the read-through lease keeps stale documents out of the cache.
    ///
    /// Both runs set the test-only `CACHESYNC_TEST_READ_DELAY_MS` (a pause between the MongoDB read and the cache
    /// write) so a change overtakes a reader often; the second run also sets `CACHESYNC_TEST_DISABLE_READ_LEASE=1`
    /// and must find stale entries, which proves the check can fail. `CACHESYNC_RACE_SECONDS` shortens the 20 s runs.
    @Suite("Read-through race")
    struct ReadThroughRaceTests {
        static let ids = (0..<50).map { "k\($0)" }
        static let seconds = ProcessInfo.processInfo.environment["CACHESYNC_RACE_SECONDS"].flatMap(Double.init) ?? 20

        /// What one run saw.
        struct Outcome {
            /// Ids whose cached value differed from MongoDB at a quiescent point (a writer pause or the end).
            var stale: [String]
            /// Read-through requests answered.
            var reads: Int
            /// Misses among them.
            var misses: Int
            /// Updates written.
            var writes: Int
        }

        @Test("8 readers on 50 hot ids while a writer updates them: no cached value differs from MongoDB afterwards")
        func leaseKeepsCacheFresh() throws {
            let outcome = try race(leaseDisabled: false)
            #expect(outcome.writes > 50)
            #expect(outcome.misses > 50, "readers must have raced the writer on misses")
            #expect(outcome.stale.isEmpty, "stale ids: \(outcome.stale)")
        }

        @Test("the same race without the lease (test-only switch) leaves stale entries: the check can fail")
        func withoutLeaseStaleEntriesAreDetected() throws {
            let outcome = try race(leaseDisabled: true)
            print("read-through race without the lease: \(outcome.stale.count) of \(Self.ids.count) ids stale "
                  + "after \(outcome.reads) reads (\(outcome.misses) misses) and \(outcome.writes) writes")
            #expect(outcome.writes > 50)
            #expect(!outcome.stale.isEmpty, "expected stale entries without the lease (reads \(outcome.reads), writes \(outcome.writes))")
        }

        func race(leaseDisabled: Bool, cluster: RedisClusterBed? = nil) throws -> Outcome {
            // The pause must be longer than the sidecar's change-to-DEL latency (~55 ms on nx-27017, which makes it
            // back off 50 ms when idle), or the applier's DEL lands after the reader's stale SET and hides it.
            var environment = ["CACHESYNC_TEST_READ_DELAY_MS": "300"]
            if leaseDisabled { environment["CACHESYNC_TEST_DISABLE_READ_LEASE"] = "1" }
            let harness = try HTTPHarness(collections: """
                  hot:
                    strategy: invalidate
                    idType: string
                """, collectionCount: 1, environment: environment, cluster: cluster)
            defer { harness.stop() }
            let ns = harness.namespace("hot")
            let pool = try harness.mongoPool()
            try pool.insertMany(ns, Self.ids.map { ["_id": .string($0), "v": .int32(0)] })

            let deadline = Date().addingTimeInterval(Self.seconds)
            let counters = RaceCounters()
            let group = DispatchGroup()
            for _ in 0..<8 {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave() }
                    while Date() < deadline {
                        let id = Self.ids.randomElement()!
                        guard let reply = HTTPHarness.get(port: harness.httpPort, path: "/v1/cache/hot/\(id)") else {
                            counters.add(failures: 1)
                            continue
                        }
                        counters.add(reads: 1, misses: reply.headers["x-cache"] == "MISS" ? 1 : 0,
                                     failures: reply.status == 200 ? 0 : 1)
                    }
                }
            }
            // The writer pauses for a second four times; at the end of each pause (the sidecar has applied every
            // update, readers are still reading) the cache is compared with MongoDB. Stale entries found at any
            // pause count, so a lease that fails is caught even if later updates would have hidden it.
            let staleSeen = StaleIDs()
            let redis: any RedisClient = try cluster?.client() ?? harness.redis.connect()
            @Sendable func staleNow() throws -> [String] {
                var stale: [String] = []
                for id in Self.ids {
                    guard let cached = try redis.command(["GET", "hot:\(id)"]).text else { continue }
                    let current = try pool.findOne(ns, id: .string(id)).map { ExtendedJSON.relaxed($0) }
                    if cached != current { stale.append(id) }
                }
                return stale
            }
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var version: Int32 = 0
                let phase = Self.seconds / 4
                var nextPause = Date().addingTimeInterval(phase - 1)
                while Date() < deadline {
                    if Date() >= nextPause {
                        Thread.sleep(forTimeInterval: 0.9)
                        if let stale = try? staleNow() { staleSeen.add(stale) }
                        nextPause = Date().addingTimeInterval(phase - 1)
                        continue
                    }
                    version += 1
                    let id = Self.ids.randomElement()!
                    if (try? pool.updateOne(ns, filter: ["_id": .string(id)], update: ["$set": .document(["v": .int32(version)])])) == 1 {
                        counters.add(writes: 1)
                    }
                }
            }
            #expect(group.wait(timeout: .now() + Self.seconds + 30) == .success)
            let totals = counters.totals
            #expect(totals.failures == 0)
            #expect(harness.waitForEvents("hot", atLeast: totals.writes), "the sidecar did not apply every update")
            Thread.sleep(forTimeInterval: 0.5)

            staleSeen.add(try staleNow())
            let stale = staleSeen.ids
            return Outcome(stale: stale, reads: totals.reads, misses: totals.misses, writes: totals.writes)
        }
    }
}

/// Counts shared by the race's threads.
final class RaceCounters: @unchecked Sendable {
    private let lock = NSLock()
    private var values = (reads: 0, misses: 0, writes: 0, failures: 0)

    /// Adds to the counts.
    func add(reads: Int = 0, misses: Int = 0, writes: Int = 0, failures: Int = 0) {
        lock.withLock {
            values.reads += reads
            values.misses += misses
            values.writes += writes
            values.failures += failures
        }
    }

    /// The counts so far.
    var totals: (reads: Int, misses: Int, writes: Int, failures: Int) { lock.withLock { values } }
}

/// Ids found stale, from any thread.
final class StaleIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: Set<String> = []

    /// Records stale ids.
    func add(_ ids: [String]) { lock.withLock { seen.formUnion(ids) } }

    /// Every id found stale so far, sorted.
    var ids: [String] { lock.withLock { seen.sorted() } }
}
