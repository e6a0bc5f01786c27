import BSONModel
import Foundation
import Glibc
import MongoBridge
import Testing
import TestSupport

@Suite("One writer per collection across replicas", .serialized)
struct LeadershipTests {
    @Test("a leader paused with SIGSTOP beyond its lease is replaced, and after SIGCONT none of its writes land")
    func fencedExLeaderWritesNothing() throws {
        try Self.fencedExLeaderWritesNothing(try SidecarFixture(), ids: [1])
    }

    /// The SIGSTOP test: leader A reads inserts of `ids` and is frozen before it applies them; B takes over and
    /// writes newer versions; A, woken, must land none of its stale writes.
    static func fencedExLeaderWritesNothing(_ f: SidecarFixture, ids: [Int32]) throws {
        let config = f.config(collections: "  products:\n    strategy: update", lease: "{ enabled: true, ttl: 2 }")
        let leaderKey = f.syncKey("leader", "products")
        let a = try CacheSyncProcess(config: config, environment: ["CACHESYNC_INSTANCE_ID": "A", "CACHESYNC_TEST_APPLY_DELAY": "1"])
        try a.start()
        try f.eventually("A leads", a) { try f.redis.command(["GET", leaderKey]).text?.hasPrefix("A|") == true }
        try f.eventually("A's stream is open", a) { a.log.contains("restarted from now") }
        let configB = f.config(collections: "  products:\n    strategy: update", lease: "{ enabled: true, ttl: 2 }",
                               httpPort: try FreePort.next())
        let b = try CacheSyncProcess(config: configB, environment: ["CACHESYNC_INSTANCE_ID": "B"])
        try b.start()
        try f.eventually("B stands by", b) { b.log.contains("HTTP API listening") }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try f.redis.command(["GET", leaderKey]).text?.hasPrefix("A|") == true, "B must not take a live lease")

        // A reads the inserts, then is frozen before it applies them (its test-only 1 s apply delay).
        let products = f.ns("products")
        try f.pool.insertMany(products, ids.map { ["_id": .int32($0), "v": .int32(1)] })
        Thread.sleep(forTimeInterval: 0.3)
        a.process.send(SIGSTOP)
        try f.eventually("B takes over", b) { try f.redis.command(["GET", leaderKey]).text?.hasPrefix("B|") == true }
        for id in ids {
            try f.pool.updateOne(products, filter: ["_id": .int32(id)], update: ["$set": .document(["v": .int32(2)])])
        }
        try f.eventually("B applied the newer writes", b) {
            try ids.allSatisfy { try f.cached(f.key("products", String($0))) == #"{"_id":\#($0),"v":2}"# }
        }

        // A wakes up holding its stale batch (v: 1): the fence (on one server WATCH on the lease key around the
        // batch's MULTI/EXEC; on a cluster each slot's fence, raised by B) must refuse it.
        a.process.send(SIGCONT)
        try f.eventually("A notices it lost the lease", a) { a.log.contains("lost the collection lease") }
        Thread.sleep(forTimeInterval: 1)
        for id in ids {
            #expect(try f.cached(f.key("products", String(id))) == #"{"_id":\#(id),"v":2}"#,
                    "the paused ex-leader's stale write of \(id) landed")
        }
        #expect(try f.redis.command(["GET", leaderKey]).text?.hasPrefix("B|") == true)
    }

    @Test("two live instances with one id: an error naming the id within one lease time, then the lease stops changing hands")
    func duplicateInstanceID() throws {
        let f = try SidecarFixture()
        let lease = "{ enabled: true, ttl: 2 }"
        let config = f.config(collections: "  products:\n    strategy: update", lease: lease)
        let leaderKey = f.syncKey("leader", "products")
        let a = try f.startSidecar(config: config, instanceId: "pod-x", collections: 1)
        let b = try CacheSyncProcess(config: f.config(collections: "  products:\n    strategy: update", lease: lease,
                                                      httpPort: try FreePort.next()),
                                     environment: ["CACHESYNC_INSTANCE_ID": "pod-x"])
        let started = Date()
        try b.start()
        // B, new, takes the lease under its own id at once (as a restart would); A finds an epoch it never had.
        try f.eventually("one of them names the duplicate id", nil, timeout: .seconds(2)) {
            (a.log + b.log).contains("another live instance uses this instance's id")
        }
        #expect(Date().timeIntervalSince(started) < 2, "within one lease time")
        #expect((a.log + b.log).contains("pod-x|"), "the message names the id")
        // No more flapping: over three lease times the holder's value stays the same.
        Thread.sleep(forTimeInterval: 0.5)
        let holder = try f.redis.command(["GET", leaderKey]).text
        var changes = 0
        for _ in 0..<30 {
            Thread.sleep(forTimeInterval: 0.2)
            if try f.redis.command(["GET", leaderKey]).text != holder { changes += 1 }
        }
        #expect(changes == 0, "the lease changed hands \(changes) times after the duplicate was found")
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("writes are still applied", a) { try f.cached(f.key("products", "1")) != nil }
        withExtendedLifetime(b) {}
    }

    @Test("an instance restarted under the same id reclaims its lease at once with a new epoch")
    func sameIdReclaims() throws {
        let f = try SidecarFixture()
        let config = f.config(collections: "  products:\n    strategy: update", lease: "{ enabled: true, ttl: 30 }")
        let leaderKey = f.syncKey("leader", "products")
        var a = try f.startSidecar(config: config, instanceId: "pod-a", collections: 1)
        #expect(try f.redis.command(["GET", leaderKey]).text?.hasPrefix("pod-a|") == true)
        let first = try #require(f.redis.command(["GET", leaderKey]).text)
        a.process.kill()
        a = try CacheSyncProcess(config: config, environment: ["CACHESYNC_INSTANCE_ID": "pod-a"])
        try a.start()
        // Far less than the 30 s lease: the restarted instance does not wait for its old lease to expire.
        try f.eventually("pod-a leads again", a, timeout: .seconds(5)) {
            let now = try f.redis.command(["GET", leaderKey]).text
            return now?.hasPrefix("pod-a|") == true && now != first
        }
        try f.eventually("stream reopened from the checkpoint", a, timeout: .seconds(5)) {
            a.log.contains("opened from the stored checkpoint")
        }
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(9)])
        try f.eventually("applies after reclaiming", a) { try f.cached(f.key("products", "9")) != nil }
    }

    @Test("verify names planted stale and orphan entries and exits 1; a consistent cache exits 0")
    func verifyFindsPlantedEntries() throws {
        let f = try SidecarFixture()
        let sidecar = try f.startSidecar(config: f.config(collections: "  products:\n    strategy: update"), collections: 1)
        let products = f.ns("products")
        for i in 0..<5 { try f.pool.insertOne(products, ["_id": .int32(Int32(i)), "v": .int32(1)]) }
        try f.eventually("applied", sidecar) { try f.appliedEvents("products") == 5 }
        sidecar.process.stop()
        let configPath = sidecar.configURL.path

        let clean = try CacheSyncProcess.runCommand(["verify", "--config", configPath])
        #expect(clean.status == 0, "verify on a consistent cache:\n\(clean.output)")
        #expect(clean.output.contains("checked 5 keys, 0 stale, 0 orphans"))

        _ = try f.redis.command(["SET", f.key("products", "2"), #"{"_id":2,"v":0}"#])
        _ = try f.redis.command(["SET", f.key("products", "77"), #"{"_id":77,"v":1}"#])
        let dirty = try CacheSyncProcess.runCommand(["verify", "--config", configPath])
        #expect(dirty.status == 1, "verify must exit 1:\n\(dirty.output)")
        #expect(dirty.output.contains("stale \(f.database).products \(f.key("products", "2"))"))
        #expect(dirty.output.contains("orphan \(f.database).products \(f.key("products", "77"))"))
        #expect(dirty.output.contains("checked 6 keys, 1 stale, 1 orphans"))
    }
}
