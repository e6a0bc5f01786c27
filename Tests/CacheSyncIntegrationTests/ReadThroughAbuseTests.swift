import BSONModel
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// The read-through API against requests for what does not exist, is too large, or is not a cached document.
@Suite("Read-through abuse", .serialized)
struct ReadThroughAbuseTests {
    /// Distinct missing ids per pass: `CACHESYNC_ABUSE_GETS`, else 2,000 (the note in BENCHMARKS.md gives a
    /// 100,000 run).
    static let distinctIDs = ProcessInfo.processInfo.environment["CACHESYNC_ABUSE_GETS"].flatMap(Int.init) ?? 2000

    @Test("GETs for distinct missing ids: one MongoDB read per id per notFoundTtl, only the negative entries left (and they expire), no counters; an insert is served at once")
    func missingIDs() throws {
        let harness = try HTTPHarness(collections: """
              users:
                strategy: update
                notFoundTtl: 600
              orders:
                strategy: invalidate
                notFoundTtl: 1
            """, collectionCount: 2)
        defer { harness.stop() }
        let redis = try harness.redis.connect()
        let socket = try #require(TCPSocket(connectingTo: harness.httpPort, timeout: .seconds(10)))
        defer { socket.close() }
        let n = Self.distinctIDs
        func pass(expectCache: String) throws {
            for i in 0..<n {
                let reply = try #require(HTTPHarness.get(on: socket, path: "/v1/cache/users/ghost-\(i)"))
                guard reply.status == 404, reply.headers["x-cache"] == expectCache else {
                    Issue.record("ghost-\(i): \(reply.status) \(reply.headers["x-cache"] ?? "-") \(reply.body)")
                    return
                }
            }
        }
        let before = try harness.stats("users")["misses"] as? Int ?? -1
        try pass(expectCache: "MISS")
        let afterFirst = try harness.stats("users")["misses"] as? Int ?? -1
        #expect(afterFirst - before == n, "one MongoDB read per id (a miss is one read)")
        try pass(expectCache: "HIT")
        #expect(try harness.stats("users")["misses"] as? Int == afterFirst, "no MongoDB read while remembered")

        // What the requests left in Redis: exactly one negative entry per id, each expiring within notFoundTtl.
        var left: [String] = []
        try redis.scan(match: "users:*", count: 1000) { keys in left += keys; return true }
        #expect(left.count == n, "\(left.count) keys for \(n) ids")
        #expect(left.allSatisfy { $0.hasSuffix(":lease") }, "no counter, no cached value: \(left.filter { !$0.hasSuffix(":lease") }.prefix(5))")
        for key in left.prefix(50) {
            let ttl = try redis.command(["PTTL", key]).integer ?? -1
            #expect(ttl > 0 && ttl <= 600_000, "\(key) expires within notFoundTtl (PTTL \(ttl))")
        }

        // An insert is served at once: its event removes the negative entry long before notFoundTtl.
        try harness.mongoPool().insertOne(harness.namespace("users"), ["_id": .string("ghost-0"), "v": .int32(1)])
        #expect(waitUntil(timeout: .seconds(10)) { HTTPHarness.get(port: harness.httpPort, path: "/v1/cache/users/ghost-0")?.status == 200 },
                "the inserted document is served")

        // Negative entries expire after notFoundTtl.
        #expect(HTTPHarness.get(port: harness.httpPort, path: "/v1/cache/orders/none")?.status == 404)
        #expect(try redis.command(["EXISTS", "orders:none:lease"]).integer == 1)
        #expect(waitUntil(timeout: .seconds(3)) { (try? redis.command(["EXISTS", "orders:none:lease"]).integer) == 0 },
                "gone after notFoundTtl (1 s)")
    }

    @Test("a document too large to cache is read once, then refused (413) without MongoDB until it changes")
    func tooLarge() throws {
        let harness = try HTTPHarness(collections: """
              blobs:
                strategy: update
                maxValueBytes: 100
            """, collectionCount: 1)
        defer { harness.stop() }
        let pool = try harness.mongoPool()
        let ns = harness.namespace("blobs")
        try pool.insertOne(ns, ["_id": .string("big"), "data": .string(String(repeating: "x", count: 500))])
        // The insert's event removes the key's lease key (and so any marker): let it land first.
        #expect(harness.waitForEvents("blobs", atLeast: 1))
        let misses = try harness.stats("blobs")["misses"] as? Int ?? -1
        let first = try harness.get("/v1/cache/blobs/big")
        #expect(first.status == 413 && first.headers["x-cache"] == "MISS", "\(first.status) \(first.body)")
        #expect(first.body.contains("maxValueBytes"))
        for _ in 0..<20 {
            let again = try harness.get("/v1/cache/blobs/big")
            #expect(again.status == 413 && again.headers["x-cache"] == "HIT")
        }
        #expect(try harness.stats("blobs")["misses"] as? Int == misses + 1, "one MongoDB read for 21 requests")
        _ = try pool.updateOne(ns, filter: ["_id": .string("big")], update: ["$set": .document(["data": .string("small")])])
        #expect(waitUntil(timeout: .seconds(10)) { (try? harness.get("/v1/cache/blobs/big").status) == 200 },
                "served once it fits: the update's event forgot the marker")
    }

    @Test("a value under the key that is not this collection's document is never served as a hit, nor overwritten")
    func foreignValue() throws {
        let harness = try HTTPHarness(collections: """
              raw:
                strategy: invalidate
                keyTemplate: "raw-{id}"
                operations: [delete]
            """, collectionCount: 1)
        defer { harness.stop() }
        let redis = try harness.redis.connect()
        _ = try redis.command(["SET", "raw-session-token", "someone else's secret"])
        _ = try redis.command(["SET", "raw-doc", #"{"_id":"doc2","x":1}"#])
        let absent = try harness.get("/v1/cache/raw/session-token")
        #expect(absent.status == 404 && !absent.body.contains("secret"), "\(absent.body)")
        try harness.mongoPool().insertOne(harness.namespace("raw"), ["_id": .string("doc"), "x": .int32(2)])
        let present = try harness.get("/v1/cache/raw/doc")
        #expect(present.status == 200 && present.headers["x-cache"] == "MISS" && present.body == #"{"_id":"doc","x":2}"#,
                "\(present.body)")
        #expect(try redis.command(["GET", "raw-session-token"]).text == "someone else's secret", "left alone")
        #expect(try redis.command(["GET", "raw-doc"]).text == #"{"_id":"doc2","x":1}"#, "not overwritten")
        #expect(try redis.command(["EXISTS", "raw-doc:access_count", "raw-session-token:access_count"]).integer == 0)
    }
}
