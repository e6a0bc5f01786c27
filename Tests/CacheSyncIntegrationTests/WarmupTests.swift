import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// Warm-up (docs/ARCHITECTURE.md §5 "Warm-up"): the cache filled from a snapshot merged with the change stream.
@Suite("Warm-up", .serialized)
struct WarmupTests {
    /// Documents in the chaos test (`CACHESYNC_WARMUP_CHAOS_DOCS`; 50,000 in scripts/warmup-chaos.sh).
    static let chaosDocuments = ProcessInfo.processInfo.environment["CACHESYNC_WARMUP_CHAOS_DOCS"].flatMap(Int.init) ?? 3_000
    /// Runs in a row (`CACHESYNC_WARMUP_CHAOS_RUNS`; 5 in scripts/warmup-chaos.sh).
    static let chaosRuns = ProcessInfo.processInfo.environment["CACHESYNC_WARMUP_CHAOS_RUNS"].flatMap(Int.init) ?? 1

    @Test("warm-up all while random updates and deletes run, kill -9 at half way, restart: it resumes, and every key holds MongoDB's value")
    func killedHalfWayResumes() throws {
        for run in 1...Self.chaosRuns {
            try chaosRun(run)
        }
    }

    private func chaosRun(_ run: Int) throws {
        let started = Date()
        let f = try SidecarFixture()
        let products = f.ns("products")
        let total = Self.chaosDocuments
        let changes = max(200, total / 25)
        let pad = String(repeating: "x", count: 200)
        for start in stride(from: 0, to: total, by: 1_000) {
            try f.pool.insertMany(products, (start..<min(start + 1_000, total)).map {
                ["_id": .string(Self.id($0)), "v": .int32(0), "pad": .string(pad)]
            })
        }
        // Chunks of 100 and a low share: the warm-up lasts long enough to be killed half way and to overlap the
        // changes.
        let chunk = 100
        let config = f.config(collections: """
              products:
                strategy: update
                warmup: { chunkSize: \(chunk), share: 0.2 }
            """)
        let environment = ["CACHESYNC_INSTANCE_ID": "test-1", "CACHESYNC_TEST_WARMUP_READ_DELAY_MS": "20"]
        var sidecar = try CacheSyncProcess(config: config, environment: environment)
        try sidecar.start()
        #expect(sidecar.waitForLog("warm-up started"), "\(sidecar.log.suffix(2000))")

        let position = f.checkpointPrefix + "warmup:\(f.database).products"
        // Random updates and deletes while the warm-up runs, before and after the kill.
        let writerDone = ManagedFlag()
        let writerError = SharedText()
        let writer = Thread {
            var random = SystemRandomNumberGenerator()
            for change in 0..<changes {
                // Half the changes go to the chunk being read (just after the stored position), where a change
                // between a chunk's read and its write is what the warm-up must not undo.
                var n = Int.random(in: 0..<total, using: &random)
                if Bool.random(using: &random), let text = try? f.cached(position), let after = Self.after(text) {
                    n = min(total - 1, after + 1 + Int.random(in: 0..<chunk, using: &random))
                }
                let id = BSONValue.string(Self.id(n))
                do {
                    try f.retrying {
                        if Int.random(in: 0..<10, using: &random) < 3 {
                            try f.pool.deleteOne(products, filter: ["_id": id])
                        } else {
                            try f.pool.updateOne(products, filter: ["_id": id],
                                                 update: ["$set": .document(["v": .int32(Int32(change + 1))])])
                        }
                    }
                } catch {
                    writerError.value = "\(error)"
                    break
                }
                Thread.sleep(forTimeInterval: 0.005)
            }
            writerDone.value = true
        }
        writer.start()

        // kill -9 once the stored position says half the documents are done.
        var doneAtKill = 0
        let halfWay = waitUntil(timeout: .seconds(120)) {
            guard let text = try? f.cached(position), let done = Self.done(text) else { return false }
            doneAtKill = done
            return done >= total / 2
        }
        #expect(halfWay, "the warm-up never got half way:\n\(sidecar.log.suffix(3000))")
        sidecar.process.kill()
        #expect(doneAtKill < total, "the warm-up finished before the kill")
        let firstLog = sidecar.log
        sidecar = try CacheSyncProcess(config: config, environment: environment)
        try sidecar.start()
        #expect(sidecar.waitForLog("warm-up resumed after _id", timeout: .seconds(30)), "\(sidecar.log.suffix(3000))")
        #expect(!sidecar.log.contains("warm-up started"), "the restart started the warm-up over")
        #expect(!sidecar.log.contains("restarted from now"), "the restart flushed the collection")
        try f.eventually("the warm-up to finish", sidecar, timeout: .seconds(300)) {
            let stored = try f.cached(position)
            return sidecar.log.contains("warm-up finished") && stored == nil
        }
        try f.eventually("the writer to finish", sidecar, timeout: .seconds(300)) { writerDone.value }
        #expect(writerError.value == nil, "a MongoDB write failed: \(writerError.value ?? "")")

        // Converged: every key holds MongoDB's document, no deleted document has a key.
        var wrong: [String] = []
        let converged = waitUntil(timeout: .seconds(60)) {
            guard let found = try? mismatches(f, products, total: total) else { return false }
            wrong = found
            return wrong.isEmpty
        }
        #expect(converged, "\(wrong.count) keys differ from MongoDB, e.g. \(wrong.prefix(5))\n\(sidecar.log.suffix(3000))")
        let lines = sidecar.log.components(separatedBy: "\n")
        let resumed = (lines.first { $0.contains("warm-up resumed") } ?? "") + " "
            + (lines.first { $0.contains("warm-up finished") } ?? "")
        print("warm-up chaos run \(run): \(total) documents, \(changes) changes, killed at \(doneAtKill) done; "
            + "\(converged ? "converged" : "NOT converged") in \(Int(Date().timeIntervalSince(started))) s; "
            + "first process logged \(firstLog.components(separatedBy: "warm-up ").count - 1) warm-up lines; \(resumed)")
        withExtendedLifetime(sidecar) {}
    }

    @Test("on a Redis Cluster: killed half way, the warm-up resumes from the position in the collection's slot, and every key lands on its master")
    func clusterResumes() throws {
        let f = try SidecarFixture(cluster: try RedisClusterBed())
        let products = f.ns("products")
        let total = 2_000
        try f.pool.insertMany(products, (0..<total).map { ["_id": .string(Self.id($0)), "v": .int32(Int32($0))] })
        let config = f.config(collections: """
              products:
                strategy: update
                warmup: { chunkSize: 50, share: 0.2 }
            """)
        let environment = ["CACHESYNC_INSTANCE_ID": "test-1", "CACHESYNC_TEST_WARMUP_READ_DELAY_MS": "20"]
        var sidecar = try CacheSyncProcess(config: config, environment: environment)
        try sidecar.start()
        let position = f.syncKey("warmup", "products")
        #expect(position.contains("{\(f.database).products}"), "the position shares the checkpoint's slot: \(position)")
        let halfWay = waitUntil(timeout: .seconds(120)) {
            guard let text = try? f.cached(position), let done = Self.done(text) else { return false }
            return done >= total / 2
        }
        #expect(halfWay, "the warm-up never got half way:\n\(sidecar.log.suffix(3000))")
        sidecar.process.kill()
        try f.pool.deleteOne(products, filter: ["_id": .string(Self.id(total - 1))])
        sidecar = try CacheSyncProcess(config: config, environment: environment)
        try sidecar.start()
        try f.eventually("the warm-up to finish", sidecar, timeout: .seconds(120)) {
            let stored = try f.cached(position)
            return sidecar.log.contains("warm-up finished") && stored == nil
        }
        #expect(sidecar.log.contains("warm-up resumed after _id"), "\(sidecar.log.suffix(3000))")
        #expect(!sidecar.log.contains("warm-up started"), "the restart started the warm-up over")
        var wrong: [Int] = []
        for n in 0..<total {
            let expected: String? = n == total - 1 ? nil : #"{"_id":"\#(Self.id(n))","v":\#(n)}"#
            if try f.cached(f.key("products", Self.id(n))) != expected { wrong.append(n) }
        }
        #expect(wrong.isEmpty, "\(wrong.count) keys differ from MongoDB, e.g. \(wrong.prefix(5))")
        let cluster = try #require(f.redis as? RedisCluster)
        for connection in try cluster.masterConnections() {
            #expect(try connection.command(["DBSIZE"]).integer ?? 0 > 100, "every master holds some of the keys")
        }
        withExtendedLifetime(sidecar) {}
    }

    @Test("warm-up honours limit, project and filter, counts in its metrics, and keeps /readyz at 503 until it ends")
    func limitProjectFilterMetricsReadiness() throws {
        let f = try SidecarFixture()
        let products = f.ns("products")
        try f.pool.insertMany(products, (0..<200).map {
            ["_id": .string(Self.id($0)), "keep": .bool($0 % 2 == 0), "secret": .string("s\($0)"), "v": .int32(Int32($0))]
        })
        let config = f.config(collections: """
              products:
                strategy: update
                project: { secret: 0 }
                filter: { keep: true }
                warmup: { limit: 100, chunkSize: 10, share: 0.01 }
            """, extra: "readyAfterWarmup: true")
        let sidecar = try f.startSidecar(config: config, collections: 1)
        var sawWarming = false
        let ended = waitUntil(timeout: .seconds(120)) {
            guard let reply = HTTPHarness.get(port: f.httpPort, path: "/readyz") else { return false }
            if reply.status == 503, reply.body.contains("warming up") { sawWarming = true }
            return reply.status == 200 && sidecar.log.contains("warm-up finished")
        }
        #expect(sawWarming, "/readyz never said warming up")
        #expect(ended, "\(sidecar.log.suffix(3000))")
        for i in 0..<200 {
            let cached = try f.cached(f.key("products", Self.id(i)))
            if i < 100 && i % 2 == 0 {
                #expect(cached == #"{"_id":"\#(Self.id(i))","keep":true,"v":\#(i)}"#, "key \(i)")
            } else {
                #expect(cached == nil, "key \(i) should not be cached: \(cached ?? "")")
            }
        }
        guard let metrics = HTTPHarness.get(port: f.httpPort, path: "/metrics") else {
            Issue.record("no /metrics")
            return
        }
        let parsed = try HTTPAPITests.MetricsEndpointTests.parse(metrics.body)
        let ns = "\(f.database).products"
        #expect(parsed.value("cachesync_warmup_documents_total", ["collection": ns]) == 100)
        #expect(parsed.value("cachesync_warmup_remaining", ["collection": ns]) == 0)
        #expect(try f.cached(f.checkpointPrefix + "warmup:\(ns)") == nil)
        withExtendedLifetime(sidecar) {}
    }

    @Test("warmup { limit: 50, sort: { updatedAt: -1 } } caches exactly the 50 newest; killed half way, the restart resumes and still ends with exactly those")
    func sortedLimitResumes() throws {
        let f = try SidecarFixture()
        let products = f.ns("products")
        // The rank of document n by updatedAt: a permutation, so that the newest are spread over the `_id`s.
        func rank(_ n: Int) -> Int { n * 37 % 200 }
        try f.pool.insertMany(products, (0..<200).map {
            ["_id": .string(Self.id($0)), "updatedAt": .datetime(1_700_000_000_000 + Int64(rank($0)) * 1_000), "v": .int32(Int32($0))]
        })
        let newest = Set((0..<200).filter { rank($0) >= 150 })
        let config = f.config(collections: """
              products:
                strategy: update
                warmup: { limit: 50, sort: { updatedAt: -1 }, chunkSize: 10, share: 0.5 }
            """)
        // A slow read per chunk: five chunks take long enough to be killed between two of them.
        let environment = ["CACHESYNC_INSTANCE_ID": "test-1", "CACHESYNC_TEST_WARMUP_READ_DELAY_MS": "400"]
        var sidecar = try CacheSyncProcess(config: config, environment: environment)
        try sidecar.start()
        #expect(sidecar.waitForLog("warm-up started: the first 50 documents by { updatedAt: -1 }"), "\(sidecar.log.suffix(2000))")
        let position = f.checkpointPrefix + "warmup:\(f.database).products"
        var doneAtKill = 0
        let halfWay = waitUntil(timeout: .seconds(60)) {
            guard let text = try? f.cached(position), let done = Self.done(text) else { return false }
            doneAtKill = done
            return done >= 20
        }
        #expect(halfWay, "the warm-up never got half way:\n\(sidecar.log.suffix(3000))")
        sidecar.process.kill()
        #expect(doneAtKill < 50, "the warm-up finished before the kill")
        sidecar = try CacheSyncProcess(config: config, environment: environment)
        try sidecar.start()
        #expect(sidecar.waitForLog("warm-up resumed after _id", timeout: .seconds(30)), "\(sidecar.log.suffix(3000))")
        try f.eventually("the warm-up to finish", sidecar, timeout: .seconds(60)) {
            let stored = try f.cached(position)
            return sidecar.log.contains("warm-up finished") && stored == nil
        }
        #expect(!sidecar.log.contains("warm-up started"), "the restart started the warm-up over")
        #expect(sidecar.log.contains("warm-up finished: 50 documents"), "\(sidecar.log.suffix(3000))")
        var documents: [String: String] = [:]
        for document in try f.pool.find(products) {
            if case .string(let id)? = document["_id"] { documents[id] = ExtendedJSON.relaxed(document) }
        }
        var wrong: [String] = []
        for n in 0..<200 {
            let cached = try f.cached(f.key("products", Self.id(n)))
            let expected = newest.contains(n) ? documents[Self.id(n)] : nil
            if cached != expected { wrong.append("\(n) (rank \(rank(n))): cached \(cached ?? "nothing")") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) keys wrong, e.g. \(wrong.prefix(5))\n\(sidecar.log.suffix(3000))")
        print("sorted warm-up: killed at \(doneAtKill) of 50 done; \(wrong.isEmpty ? "exactly the 50 newest cached" : "\(wrong.count) keys wrong")")
        withExtendedLifetime(sidecar) {}
    }

    @Test("warm-up writes a hashed collection's documents as hashes with their secondary keys and records, as the stream would")
    func hashAndSecondaryKeys() throws {
        let f = try SidecarFixture()
        let users = f.ns("users")
        try f.pool.insertMany(users, (0..<50).map {
            ["_id": .string(Self.id($0)), "email": .string("u\($0)@example.com"), "v": .int32(Int32($0))]
        })
        let sidecar = try f.startSidecar(config: f.config(collections: """
              users:
                strategy: update
                format: hash
                indexes: [ { key: "user:email:{email}" } ]
                warmup: { chunkSize: 8 }
            """), collections: 1)
        try f.eventually("warm-up finished", sidecar, timeout: .seconds(60)) { sidecar.log.contains("warm-up finished") }
        let prefix = f.redisServer.keyPrefix
        for i in 0..<50 {
            let key = f.key("users", Self.id(i))
            #expect(try StrategyEndToEndTests.hashJSON(f, key) == #"{"_id":"\#(Self.id(i))","email":"u\#(i)@example.com","v":\#(i)}"#)
            #expect(try f.cached(prefix + "user:email:u\(i)@example.com") == key)
            #expect(try f.cached(key + ":indexes") == prefix + "user:email:u\(i)@example.com")
        }
        // The stream takes over: an email change moves the secondary key.
        try f.pool.updateOne(users, filter: ["_id": .string(Self.id(3))], update: ["$set": .document(["email": .string("new@example.com")])])
        try f.eventually("moved", sidecar) { try f.cached(prefix + "user:email:new@example.com") != nil }
        #expect(try f.cached(prefix + "user:email:u3@example.com") == nil)
    }

    /// The `_id` of document `n`: zero-padded text, since nx-27017 sorts integer `_id`s as text (`10` before `9`)
    /// while comparing them as numbers in `$gt`, which reads a range in an order MongoDB never uses.
    static func id(_ n: Int) -> String {
        let digits = String(n)
        return "d" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// The number in the `_id` (`"d001234"`) after which a stored warm-up position continues.
    private static func after(_ text: String) -> Int? {
        guard let range = text.range(of: #""after" : "d"#) ?? text.range(of: #""after":"d"#) else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }

    /// The documents done of a stored warm-up position (`{"done":{"$numberLong":"N"},…}`).
    private static func done(_ text: String) -> Int? {
        guard let range = text.range(of: #""$numberLong" : ""#) ?? text.range(of: #""$numberLong":""#) else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }

    /// The ids whose key does not hold MongoDB's document as the stream caches it (or holds one for a deleted one).
    private func mismatches(_ f: SidecarFixture, _ ns: MongoNamespace, total: Int) throws -> [String] {
        var present: [String: String] = [:]
        for document in try f.pool.find(ns) {
            if case .string(let id)? = document["_id"] { present[id] = ExtendedJSON.relaxed(document) }
        }
        var wrong: [String] = []
        for start in stride(from: 0, to: total, by: 1_000) {
            let ids = (start..<min(start + 1_000, total)).map(Self.id)
            let values = try f.redis.command(["MGET"] + ids.map { f.key("products", $0) }).array ?? []
            for (id, value) in zip(ids, values) where value.text != present[id] {
                wrong.append("\(id): cached \(value.text ?? "nothing"), MongoDB \(present[id] ?? "nothing")")
            }
        }
        return wrong
    }
}

/// A text shared between threads.
private final class SharedText: @unchecked Sendable {
    private let lock = NSLock()
    private var text: String?
    var value: String? {
        get { lock.withLock { text } }
        set { lock.withLock { text = newValue } }
    }
}
