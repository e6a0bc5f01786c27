import BSONModel
import Foundation
import MongoBridge
import Testing
import TestSupport

@Suite("The three strategies end to end: real binary, redis-server, MongoDB wire server", .serialized)
struct StrategyEndToEndTests {
    @Test("after inserts, updates, replaces and deletes Redis holds exactly what the strategy table implies",
          arguments: RedisTransport.testable)
    func strategyTable(_ transport: RedisTransport) throws {
        let f = try SidecarFixture(redis: transport.options())
        try Self.checkStrategyTable(f, try f.startSidecar())
    }

    /// The strategy table against the running `sidecar` of `f` (one server or a cluster).
    /// With `hash`, the collections are `format: hash`: each cached document is read back as the JSON its hash
    /// fields stand for.
    static func checkStrategyTable(_ f: SidecarFixture, _ sidecar: CacheSyncProcess, hash: Bool = false) throws {
        let users = f.ns("users"), products = f.ns("products"), sessions = f.ns("sessions")

        // update (write-through): insert → SET, update/replace → SET with the new document, delete → DEL.
        try f.pool.insertOne(products, ["_id": .int32(1), "name": .string("lamp"), "price": .int32(10)])
        try f.pool.insertOne(products, ["_id": .int32(2), "name": .string("desk")])
        try f.pool.insertOne(products, ["_id": .string("sku 7 ü"), "name": .string("chair")])
        try f.pool.updateOne(products, filter: ["_id": .int32(1)], update: ["$set": .document(["price": .int32(12)])])
        try f.pool.replaceOne(products, filter: ["_id": .int32(2)], replacement: ["_id": .int32(2), "name": .string("table")])
        try f.pool.insertOne(products, ["_id": .int32(3), "name": .string("gone")])
        try f.pool.deleteOne(products, filter: ["_id": .int32(3)])
        try f.eventually("products applied", sidecar) { try f.appliedEvents("products") >= 7 }
        #expect(try cached(f, hash, f.key("products", "1")) == #"{"_id":1,"name":"lamp","price":12}"#)
        #expect(try cached(f, hash, f.key("products", "2")) == #"{"_id":2,"name":"table"}"#)
        #expect(try cached(f, hash, f.key("products", "sku 7 ü")) == #"{"_id":"sku 7 ü","name":"chair"}"#)
        #expect(try cached(f, hash, f.key("products", "3")) == nil)
        let ttl = try f.pttl(f.key("products", "1"))
        #expect(ttl > 295_000 && ttl <= 300_000, "base TTL expected, got \(ttl) ms")

        // invalidate: insert is ignored, update and delete remove the cached key.
        _ = try f.redis.command(["SET", f.key("users", "u1"), "old"])
        _ = try f.redis.command(["SET", f.key("users", "u2"), "old"])
        try f.pool.insertOne(users, ["_id": .string("u1"), "n": .int32(1)])
        try f.pool.insertOne(users, ["_id": .string("u3"), "n": .int32(1)])
        try f.pool.updateOne(users, filter: ["_id": .string("u1")], update: ["$set": .document(["n": .int32(2)])])
        try f.pool.insertOne(users, ["_id": .string("u2"), "n": .int32(1)])
        try f.pool.deleteOne(users, filter: ["_id": .string("u2")])
        try f.eventually("users applied", sidecar) { try f.appliedEvents("users") >= 5 }
        #expect(try cached(f, hash, f.key("users", "u1")) == nil)
        #expect(try cached(f, hash, f.key("users", "u2")) == nil)
        #expect(try cached(f, hash, f.key("users", "u3")) == nil, "invalidate must not cache inserts")

        // preserve-ttl: insert → SET EX base; update of a cached key keeps its remaining TTL; an uncached key stays uncached.
        try f.pool.insertOne(sessions, ["_id": .string("s1"), "v": .int32(1)])
        try f.eventually("session cached", sidecar) { try cached(f, hash, f.key("sessions", "s1")) != nil }
        let initial = try f.pttl(f.key("sessions", "s1"))
        #expect(initial > 3_595_000 && initial <= 3_600_000)
        _ = try f.redis.command(["PEXPIRE", f.key("sessions", "s1"), "50000"])
        Thread.sleep(forTimeInterval: 2)
        try f.pool.updateOne(sessions, filter: ["_id": .string("s1")], update: ["$set": .document(["v": .int32(2)])])
        try f.eventually("session refreshed", sidecar) { try cached(f, hash, f.key("sessions", "s1")) == #"{"_id":"s1","v":2}"# }
        let kept = try f.pttl(f.key("sessions", "s1"))
        #expect(abs(kept - 48_000) <= 1_000, "the remaining TTL (~48 s) must be kept, got \(kept) ms")
        try f.pool.insertOne(sessions, ["_id": .string("s2"), "v": .int32(1)])
        try f.eventually("s2 cached", sidecar) { try cached(f, hash, f.key("sessions", "s2")) != nil }
        _ = try f.redis.command(["DEL", f.key("sessions", "s2")])
        try f.pool.updateOne(sessions, filter: ["_id": .string("s2")], update: ["$set": .document(["v": .int32(2)])])
        try f.pool.insertOne(sessions, ["_id": .string("marker")])
        try f.eventually("marker", sidecar) { try cached(f, hash, f.key("sessions", "marker")) != nil }
        #expect(try cached(f, hash, f.key("sessions", "s2")) == nil, "preserve-ttl must not create an uncached key on update")
        withExtendedLifetime(sidecar) {}
    }

    /// The cached document at `key`: its JSON, or with `hash` the JSON its hash stands for.
    static func cached(_ f: SidecarFixture, _ hash: Bool, _ key: String) throws -> String? {
        hash ? try hashJSON(f, key) : try f.cached(key)
    }

    /// The JSON document the hash at `key` stands for (`_id` first, then the fields as Redis returns them); `nil`
    /// when there is no hash there.
    static func hashJSON(_ f: SidecarFixture, _ key: String) throws -> String? {
        guard let flat = try f.redis.command(["HGETALL", key]).array?.compactMap(\.text), !flat.isEmpty else { return nil }
        var pairs = stride(from: 0, to: flat.count - 1, by: 2).map { (flat[$0], flat[$0 + 1]) }
        pairs.sort { lhs, _ in lhs.0 == "_id" }
        return "{" + pairs.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    /// The strategy table's collections with `format: hash`; `products` also gets `productsExtra`.
    static func hashCollections(productsExtra: String = "") -> String {
        """
          users:
            strategy: invalidate
            format: hash
          products:
            strategy: update
            format: hash
        \(productsExtra)
          sessions:
            strategy: preserve-ttl
            format: hash
            ttl: { base: 3600 }
        """
    }

    @Test("format: hash passes the strategy table (TTL tiers, preserve-ttl keeps the remaining TTL), serves the same JSON through the read-through API, and verify compares fields")
    func hashFormat() throws {
        let f = try SidecarFixture()
        let sidecar = try f.startSidecar(config: f.config(collections: Self.hashCollections()))
        try Self.checkStrategyTable(f, sidecar, hash: true)
        #expect(try f.redis.command(["TYPE", f.key("products", "1")]) == .status("hash"))
        #expect(try f.redis.command(["HGET", f.key("products", "1"), "price"]).text == "12")
        #expect(try f.redis.command(["HGET", f.key("products", "sku 7 ü"), "_id"]).text == #""sku 7 ü""#)

        // Read-through: a miss stores a hash, a hit answers the same JSON.
        _ = try f.redis.command(["DEL", f.key("products", "1")])
        let miss = try #require(HTTPHarness.get(port: f.httpPort, path: "/v1/cache/products/1"))
        #expect(miss.status == 200 && miss.body == #"{"_id":1,"name":"lamp","price":12}"#, "\(miss.body)")
        #expect(try Self.hashJSON(f, f.key("products", "1")) == miss.body)
        let hit = try #require(HTTPHarness.get(port: f.httpPort, path: "/v1/cache/products/1"))
        #expect(hit.body == miss.body)
        // The adaptive TTL of a hash follows its access count too.
        _ = try f.redis.command(["SET", f.key("products", "1") + ":access_count", "150"])
        try f.pool.updateOne(f.ns("products"), filter: ["_id": .int32(1)], update: ["$set": .document(["price": .int32(13)])])
        try f.eventually("price 13", sidecar) { try f.redis.command(["HGET", f.key("products", "1"), "price"]).text == "13" }
        let ttl = try f.pttl(f.key("products", "1"))
        #expect(ttl > 1_795_000 && ttl <= 1_800_000, "tier TTL expected, got \(ttl) ms")

        sidecar.process.stop()
        var verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "\(verify.output)")
        _ = try f.redis.command(["HSET", f.key("products", "2"), "name", #""chair""#])
        verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 1 && verify.output.contains("stale \(f.database).products \(f.key("products", "2"))"), "\(verify.output)")
    }

    @Test("the update strategy's TTL follows the key's access count")
    func adaptiveTTL() throws {
        let f = try SidecarFixture()
        let sidecar = try f.startSidecar()
        let products = f.ns("products")
        let expectations: [(accesses: Int, ttl: Int64)] = [(0, 300), (9, 300), (10, 900), (150, 1800), (5000, 3600)]
        for (i, (accesses, ttl)) in expectations.enumerated() {
            let id = "p\(i)"
            if accesses > 0 { _ = try f.redis.command(["SET", f.key("products", id) + ":access_count", String(accesses)]) }
            try f.pool.insertOne(products, ["_id": .string(id)])
            try f.eventually("\(id) cached", sidecar) { try f.cached(f.key("products", id)) != nil }
            let actual = try f.pttl(f.key("products", id))
            #expect(actual > (ttl - 5) * 1000 && actual <= ttl * 1000, "\(accesses) accesses: expected TTL \(ttl) s, got \(actual) ms")
        }
        withExtendedLifetime(sidecar) {}
    }

    @Test("a clean SIGTERM exits 0 and a restart resumes from the checkpoint without applying anything twice",
          arguments: RedisTransport.testable)
    func cleanRestartNoReplay(_ transport: RedisTransport) throws {
        let f = try SidecarFixture(redis: transport.options())
        var sidecar = try f.startSidecar()
        let products = f.ns("products")
        for i in 0..<50 { try f.pool.insertOne(products, ["_id": .int32(Int32(i)), "v": .int32(1)]) }
        try f.eventually("first 50 applied", sidecar) { try f.appliedEvents("products") == 50 }
        sidecar.process.stop(timeout: .seconds(15))
        #expect(sidecar.process.exitStatus == 0, "SIGTERM must exit 0:\n\(sidecar.log.suffix(2000))")
        #expect(sidecar.log.contains("cachesync stopped cleanly"))

        for i in 0..<50 { try f.pool.updateOne(products, filter: ["_id": .int32(Int32(i))], update: ["$set": .document(["v": .int32(2)])]) }
        sidecar = try f.startSidecar()
        try f.eventually("updates applied", sidecar) { try f.appliedEvents("products") >= 100 }
        Thread.sleep(forTimeInterval: 1)
        #expect(try f.appliedEvents("products") == 100, "each of the 100 events must be applied exactly once")
        #expect(try f.cached(f.key("products", "49")) == #"{"_id":49,"v":2}"#)
        withExtendedLifetime(sidecar) {}
    }
}
