import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import Testing
import TestSupport

@Suite("Crash and server-restart recovery", .serialized)
struct RecoveryTests {
    @Test("kill -9 during 5,000 writes, then a restart: every write reaches Redis and none is applied twice")
    func killNineLosesNothing() throws {
        let f = try SidecarFixture()
        let config = f.config()
        var sidecar = try f.startSidecar(config: config)
        let products = f.ns("products")
        let ids = 2_500
        var writes = 0
        for i in 0..<ids {
            try f.pool.insertOne(products, ["_id": .int32(Int32(i)), "v": .int32(1)])
            writes += 1
            if writes == 1_500 {
                sidecar.process.kill()
                #expect(sidecar.process.exitStatus != 0)
                sidecar = try CacheSyncProcess(config: config, environment: ["CACHESYNC_INSTANCE_ID": "test-1"])
                try sidecar.start()
            }
        }
        for i in 0..<ids {
            try f.pool.updateOne(products, filter: ["_id": .int32(Int32(i))], update: ["$set": .document(["v": .int32(2)])])
            writes += 1
        }
        #expect(writes == 5_000)
        try f.eventually("all 5,000 events applied", sidecar, timeout: .seconds(60)) { try f.appliedEvents("products") >= 5_000 }
        Thread.sleep(forTimeInterval: 1)
        #expect(try f.appliedEvents("products") == 5_000, "the applied-events counter moves atomically with the checkpoint")
        var wrong: [Int] = []
        for i in 0..<ids where try f.cached(f.key("products", String(i))) != #"{"_id":\#(i),"v":2}"# {
            wrong.append(i)
        }
        #expect(wrong.isEmpty, "\(wrong.count) keys do not hold the last write, e.g. \(wrong.prefix(5))")
        withExtendedLifetime(sidecar) {}
    }

    @Test("the MongoDB server stopped and restarted: cachesync reconnects and catches up without a restart",
          .enabled(if: MongoTestServer.startsOwnServer, "stops and restarts the MongoDB server: needs its own (MONGODB_URI unset)"))
    func mongoRestart() throws {
        let f = try SidecarFixture()
        let sidecar = try f.startSidecar()
        let products = f.ns("products")
        try f.pool.insertOne(products, ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("first write", sidecar) { try f.cached(f.key("products", "1")) != nil }

        #expect(HTTPHarness.get(port: f.httpPort, path: "/readyz")?.status == 200)
        try f.mongoServer.stop()
        try f.eventually("the outage noticed", sidecar) { sidecar.log.contains("reconnecting in") }
        try f.eventually("/readyz reports not ready", sidecar) { HTTPHarness.get(port: f.httpPort, path: "/readyz")?.status == 503 }
        try f.mongoServer.start()
        try f.retrying { try f.pool.updateOne(products, filter: ["_id": .int32(1)], update: ["$set": .document(["v": .int32(2)])]) }
        try f.retrying { try f.pool.insertOne(products, ["_id": .int32(2), "v": .int32(1)]) }
        try f.eventually("caught up after the restart", sidecar, timeout: .seconds(40)) {
            try f.cached(f.key("products", "1")) == #"{"_id":1,"v":2}"# && f.cached(f.key("products", "2")) != nil
        }
        #expect(sidecar.process.isRunning)
        #expect(sidecar.log.contains("opened from the stored checkpoint"))
        try f.eventually("/readyz ready again", sidecar) { HTTPHarness.get(port: f.httpPort, path: "/readyz")?.status == 200 }
        // libmongoc's own warnings during the outage are logged as JSON too: every line is one JSON object.
        let notJSON = sidecar.log.split(separator: "\n").filter { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) == nil }
        #expect(notJSON.isEmpty, "log lines that are not JSON: \(notJSON.prefix(3))")
        // Timestamps are formatted by hand (no ICU): ISO 8601 in UTC with milliseconds, at the time of writing.
        let stamps = sidecar.log.split(separator: "\n").compactMap { line in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["ts"] as? String
        }
        let now = Date().timeIntervalSince1970
        let badStamps = stamps.filter { stamp in
            guard stamp.utf8.count == 24, stamp.hasSuffix("Z"), let ms = ExtendedJSON.parseISODate(stamp) else { return true }
            return abs(Double(ms) / 1000 - now) > 300
        }
        #expect(!stamps.isEmpty && badStamps.isEmpty, "log timestamps: \(badStamps.prefix(3))")
    }

    @Test("redis-server killed and restarted: cachesync reconnects and applies later changes",
          .enabled(if: RedisTestServer.startsOwnServer, "kills and restarts redis-server: needs its own (REDIS_URL unset)"))
    func redisRestart() throws {
        let f = try SidecarFixture(redis: .init(persistence: true))
        let sidecar = try f.startSidecar()
        let products = f.ns("products")
        try f.pool.insertOne(products, ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("first write", sidecar) { try f.cached(f.key("products", "1")) != nil }
        try f.redisServer.kill()
        try f.pool.updateOne(products, filter: ["_id": .int32(1)], update: ["$set": .document(["v": .int32(2)])])
        try f.eventually("the outage noticed", sidecar) { sidecar.log.contains("reconnecting in") }
        try f.redisServer.start()
        try f.eventually("caught up after the restart", sidecar, timeout: .seconds(40)) {
            try f.cached(f.key("products", "1")) == #"{"_id":1,"v":2}"#
        }
        #expect(sidecar.process.isRunning)
    }
}
