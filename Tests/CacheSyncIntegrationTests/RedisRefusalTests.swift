import BSONModel
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// Redis refusing writes must not stall a collection nor leave a stale entry.
@Suite("Redis refusing writes", .serialized,
       .enabled(if: RedisTestServer.startsOwnServer, "sets maxmemory on its own redis-server"))
struct RedisRefusalTests {
    @Test("over maxmemory without eviction a batch's keys are deleted instead of written: nothing stale, later events go on, each refusal counted; with memory back, writes resume")
    func outOfMemory() throws {
        let f = try SidecarFixture(redis: .init(extraConfig: ["maxmemory-policy noeviction"]))
        let sidecar = try f.startSidecar(config: f.config(collections: "  products:\n    strategy: update"), collections: 1)
        let products = f.ns("products")
        let key = f.key("products", "1")
        func update(_ v: Int32) throws {
            _ = try f.pool.updateOne(products, filter: ["_id": .int32(1)], update: ["$set": .document(["v": .int32(v)])])
        }
        try f.pool.insertOne(products, ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("cached", sidecar) { try f.cached(key) == #"{"_id":1,"v":1}"# }

        _ = try f.redis.command(["CONFIG", "SET", "maxmemory", "1"])
        try update(2)
        try f.eventually("the entry deleted rather than left stale", sidecar) { try f.cached(key) == nil }
        #expect(sidecar.log.contains("redis refused the batch's writes (OOM)"), "\(sidecar.log.suffix(2000))")
        func refusals() -> Int {
            let metrics = HTTPHarness.get(port: f.httpPort, path: "/metrics")?.body ?? ""
            let line = metrics.split(separator: "\n").first { $0.contains("cachesync_errors_total") && $0.contains("redis_refused") }
            return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        }
        let refusedOnce = refusals()
        #expect(refusedOnce >= 1)
        try update(3)
        try f.eventually("a later event is processed too (refused and counted, not stuck)", sidecar) { refusals() > refusedOnce }
        #expect(try f.cached(key) == nil)

        _ = try f.redis.command(["CONFIG", "SET", "maxmemory", "0"])
        try update(4)
        try f.eventually("writes resume once Redis has memory", sidecar, timeout: .seconds(30)) {
            try f.cached(key) == #"{"_id":1,"v":4}"#
        }
        #expect(sidecar.process.isRunning)
    }

    @Test("WRONGTYPE in a batch (a string where cachesync keeps its applied-events hash): the batch's keys are deleted, the error counted, the stream goes on")
    func wrongType() throws {
        let f = try SidecarFixture()
        let sidecar = try f.startSidecar(config: f.config(collections: "  products:\n    strategy: update"), collections: 1)
        _ = try f.redis.command(["SET", f.checkpointPrefix + "applied:\(f.database).products", "not a hash"])
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("the refusal logged", sidecar) { sidecar.log.contains("redis refused the batch's writes (WRONGTYPE)") }
        #expect(try f.cached(f.key("products", "1")) == nil, "the batch's key deleted, not left as the transaction wrote it")
        _ = try f.redis.command(["DEL", f.checkpointPrefix + "applied:\(f.database).products"])
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(2), "v": .int32(1)])
        try f.eventually("later events applied once the key is fixed", sidecar) { try f.cached(f.key("products", "2")) != nil }
        #expect(sidecar.process.isRunning)
    }

    @Test("a key of another type (a hash, a list under the access counter) neither stops the stream nor survives an update")
    func otherTypes() throws {
        let f = try SidecarFixture()
        let sidecar = try f.startSidecar(config: f.config(collections: "  products:\n    strategy: update"), collections: 1)
        let key = f.key("products", "1")
        _ = try f.redis.command(["HSET", key, "planted", "hash"])
        _ = try f.redis.command(["RPUSH", key + ":access_count", "a list"])
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("the document replaces the hash", sidecar) { try f.cached(key) == #"{"_id":1,"v":1}"# }
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(2), "v": .int32(1)])
        try f.eventually("later events applied", sidecar) { try f.cached(f.key("products", "2")) != nil }
        #expect(sidecar.process.isRunning)
    }
}
