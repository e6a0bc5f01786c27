import BSONModel
@testable import CacheSync
import CacheSyncCore
import RedisBridge
import Testing
import TestSupport

/// The commands of `BatchApplier.commands(_:checkpoint:events:)`, read back from the protocol bytes of the batch, and
/// what they leave in a real redis-server.
@Suite("BatchApplier: a batch's transaction, command by command")
struct BatchApplierTests {
    /// The keys of shop.products under the checkpoint prefix `cs:`.
    static let keys = SyncKeys(checkpointPrefix: "cs:", namespace: "shop.products")
    /// A checkpoint to write.
    static let checkpoint = Checkpoint.resumeAfter(["_data": .string("8263A1B2C3000000012B022C0100296E5A1004")])

    /// An applier whose connection never connects: building commands needs no server.
    static func offlineApplier() throws -> BatchApplier {
        BatchApplier(redis: try RedisConnection(options: RedisConnectionOptions(port: 1), connectNow: false), keys: keys)
    }

    /// The commands a batch holds, each as its arguments (decoded as UTF-8), read from the RESP bytes by their
    /// lengths; `nil` when the bytes are not a sequence of arrays of bulk strings that ends where the bytes end.
    static func decode(_ batch: RedisCommandBatch) -> [[String]]? {
        let bytes = batch.bytes
        var index = 0
        func number(after marker: UInt8) -> Int? {
            guard index < bytes.count, bytes[index] == marker else { return nil }
            var end = index + 1
            while end + 1 < bytes.count, !(bytes[end] == 13 && bytes[end + 1] == 10) { end += 1 }
            guard end + 1 < bytes.count, let value = Int(String(decoding: bytes[(index + 1)..<end], as: UTF8.self)) else { return nil }
            index = end + 2
            return value
        }
        var commands: [[String]] = []
        while index < bytes.count {
            guard let count = number(after: UInt8(ascii: "*")) else { return nil }
            var arguments: [String] = []
            for _ in 0..<count {
                guard let length = number(after: UInt8(ascii: "$")), index + length + 2 <= bytes.count,
                      bytes[index + length] == 13, bytes[index + length + 1] == 10 else { return nil }
                arguments.append(String(decoding: bytes[index..<(index + length)], as: UTF8.self))
                index += length + 2
            }
            commands.append(arguments)
        }
        return commands
    }

    @Test("set, refresh and delete become SET EX, SET XX KEEPTTL and UNLINK in order, then one UNLINK of their leases, the checkpoint and the counters")
    func layout() throws {
        let set = CacheKey(text: "products:1"), refresh = CacheKey(text: "products:ünï ☃"), deleted = CacheKey(text: "products:3")
        let value = #"{"_id":1,"name":"Zoë","note":"a\r\nb"}"#
        let ops: [CacheOp] = [
            .set(key: set, value: value, ttlSeconds: 86_400),
            .skip(key: CacheKey(text: "products:4"), reason: .operationNotConfigured),
            .refresh(key: refresh, value: #"{"_id":"ünï ☃","v":2}"#),
            .delete(key: deleted, reason: .deleted),
            .flushCollection(namespace: "shop.products", pattern: "products:*", reason: .drop),
        ]
        let batch = try Self.offlineApplier().commands(ops, checkpoint: .set(Self.checkpoint), events: 5)
        let expected = [
            ["SET", "products:1", value, "EX", "86400"],
            ["SET", "products:ünï ☃", #"{"_id":"ünï ☃","v":2}"#, "XX", "KEEPTTL"],
            ["UNLINK", "products:3"],
            ["UNLINK", "products:1:lease", "products:ünï ☃:lease", "products:3:lease"],
            ["SET", "cs:resume:shop.products", Self.checkpoint.storedText],
            ["HINCRBY", "cs:applied:shop.products", "events", "5"],
            ["HINCRBY", "cs:applied:shop.products", "batches", "1"],
        ]
        #expect(Self.decode(batch) == expected)
        #expect(batch.count == expected.count, "one reply expected per command")
        #expect(batch.bytes == RedisCommandBatch(expected.map { $0.map { Array($0.utf8) } }).bytes,
                "byte for byte the layout of the same commands as argument arrays")
    }

    @Test("the checkpoint is kept (no command), set (SET of the resume key) or deleted (DEL of the resume key)")
    func checkpointChanges() throws {
        let applier = try Self.offlineApplier()
        let ops: [CacheOp] = [.delete(key: CacheKey(text: "products:9"), reason: .changed)]
        let writes = [["UNLINK", "products:9"], ["UNLINK", "products:9:lease"]]
        let counters = [["HINCRBY", "cs:applied:shop.products", "events", "1"], ["HINCRBY", "cs:applied:shop.products", "batches", "1"]]
        #expect(Self.decode(applier.commands(ops, checkpoint: .keep, events: 1)) == writes + counters)
        #expect(Self.decode(applier.commands(ops, checkpoint: .delete, events: 1))
                == writes + [["DEL", "cs:resume:shop.products"]] + counters)
        #expect(Self.decode(applier.commands(ops, checkpoint: .set(.startAfter(["_data": .string("82AB")])), events: 1))
                == writes + [["SET", "cs:resume:shop.products", Checkpoint.startAfter(["_data": .string("82AB")]).storedText]] + counters)
    }

    @Test("a warm-up chunk's sets come with its position (SET of the warm-up key), the last chunk's with its removal (DEL), after the checkpoint")
    func warmupPositionChanges() throws {
        let applier = try Self.offlineApplier()
        let ops: [CacheOp] = [.set(key: CacheKey(text: "products:1"), value: #"{"_id":1}"#, ttlSeconds: 60)]
        let writes = [["SET", "products:1", #"{"_id":1}"#, "EX", "60"], ["UNLINK", "products:1:lease"]]
        let position = WarmupPosition(after: .int32(1), done: 1)
        #expect(Self.decode(applier.commands(ops, checkpoint: .keep, events: 0, warmup: .set(position.storedText)))
                == writes + [["SET", "cs:warmup:shop.products", position.storedText]])
        #expect(Self.decode(applier.commands(ops, checkpoint: .set(.resumeAfter(["_data": .string("82AB")])), events: 0,
                                             warmup: .delete))
                == writes + [["SET", "cs:resume:shop.products", Checkpoint.resumeAfter(["_data": .string("82AB")]).storedText],
                             ["DEL", "cs:warmup:shop.products"]])
    }

    @Test("a batch of skipped events still moves the checkpoint and counts them; no events, no counters; nothing at all, no commands")
    func emptyBatches() throws {
        let applier = try Self.offlineApplier()
        let skipped: [CacheOp] = [.skip(key: CacheKey(text: "products:1"), reason: .operationNotConfigured)]
        #expect(Self.decode(applier.commands(skipped, checkpoint: .set(Self.checkpoint), events: 3)) == [
            ["SET", "cs:resume:shop.products", Self.checkpoint.storedText],
            ["HINCRBY", "cs:applied:shop.products", "events", "3"],
            ["HINCRBY", "cs:applied:shop.products", "batches", "1"],
        ])
        #expect(Self.decode(applier.commands([.delete(key: CacheKey(text: "k"), reason: .changed)], checkpoint: .keep, events: 0))
                == [["UNLINK", "k"], ["UNLINK", "k:lease"]], "a flush's deletes count no events")
        #expect(applier.commands(skipped, checkpoint: .keep, events: 0).count == 0)
        #expect(applier.commands([], checkpoint: .keep, events: 0).bytes.isEmpty)
    }

    @Test("run as one transaction in redis-server, the commands write, refresh only cached keys, delete, drop the leases and count")
    func effectsInRedis() throws {
        try withRedisServer { server in
            let redis = try server.connect()
            let keys = SyncKeys(checkpointPrefix: server.key("cs:"), namespace: "shop.products")
            let applier = BatchApplier(redis: redis, keys: keys)
            let set = CacheKey(text: server.key("products:1")), cached = CacheKey(text: server.key("products:2"))
            let uncached = CacheKey(text: server.key("products:5")), deleted = CacheKey(text: server.key("products:3"))
            _ = try redis.command(["SET", cached.text, "old", "EX", "1000"])
            _ = try redis.command(["SET", deleted.text, "old"])
            for key in [set, cached, uncached, deleted] { _ = try redis.command(["SET", key.leaseKey, "reader-token"]) }
            let ops: [CacheOp] = [
                .set(key: set, value: "v1", ttlSeconds: 300),
                .refresh(key: cached, value: "v2"),
                .refresh(key: uncached, value: "v5"),
                .delete(key: deleted, reason: .deleted),
            ]
            let replies = try #require(try redis.transaction(applier.commands(ops, checkpoint: .set(Self.checkpoint), events: 4)))
            #expect(!replies.contains { $0.isError }, "\(replies)")

            #expect(try redis.command(["GET", set.text]).text == "v1")
            #expect((1...300).contains(try redis.command(["TTL", set.text]).integer ?? -3))
            #expect(try redis.command(["GET", cached.text]).text == "v2")
            #expect((900...1000).contains(try redis.command(["TTL", cached.text]).integer ?? -3), "the refresh kept the TTL")
            #expect(try redis.command(["EXISTS", uncached.text]).integer == 0, "a refresh never caches a key that was not cached")
            #expect(try redis.command(["EXISTS", deleted.text]).integer == 0)
            for key in [set, cached, uncached, deleted] {
                #expect(try redis.command(["EXISTS", key.leaseKey]).integer == 0, "\(key.leaseKey) removed")
            }
            #expect(try applier.loadCheckpoint() == Self.checkpoint)
            #expect(try redis.command(["HGET", keys.applied, "events"]).text == "4")

            let next = applier.commands([.delete(key: set, reason: .changed)], checkpoint: .keep, events: 2)
            #expect(try redis.transaction(next) != nil)
            #expect(try redis.command(["EXISTS", set.text]).integer == 0)
            #expect(try redis.command(["HMGET", keys.applied, "events", "batches"]).array?.map(\.text) == ["6", "2"])
            #expect(try applier.loadCheckpoint() == Self.checkpoint, "a kept checkpoint is left as it was")
        }
    }

    @Test("on a Redis Cluster, each master's script writes every kind of op and drops the leases, whether the script names a key's lease or is sent it (a hash tag, a } without one)")
    func clusterScriptsInRedis() throws {
        let bed = try RedisClusterBed(replicas: false)
        defer { bed.cleanUp() }
        let cluster = bed.client()
        let keys = SyncKeys(checkpointPrefix: "cs:", namespace: "shop.products", cluster: true)
        let applier = BatchApplier(redis: cluster, keys: keys)
        for text in ["products:1", "{user:1}:a", "a}b:1"] {
            func key(_ suffix: String) -> CacheKey { CacheKey(text: text + suffix, colocatesDerivedKeys: true) }
            let set = key(":set"), refreshed = key(":refreshed"), deleted = key(":deleted")
            let hashed = key(":hashed"), rehashed = key(":rehashed")
            #expect(set.derivedKeyWrapsText == !text.contains("}"))
            _ = try cluster.command(["SET", refreshed.text, "old", "EX", "1000"])
            _ = try cluster.command(["SET", deleted.text, "old"])
            _ = try cluster.command(["HSET", rehashed.text, "a", "1", "b", "2"])
            _ = try cluster.command(["EXPIRE", rehashed.text, "1000"])
            let all = [set, refreshed, deleted, hashed, rehashed]
            for key in all { _ = try cluster.command(["SET", key.leaseKey, "reader-token"]) }
            try applier.apply([
                .set(key: set, value: "v1", ttlSeconds: 300),
                .refresh(key: refreshed, value: "v2"),
                .delete(key: deleted, reason: .deleted),
                .setHash(key: hashed, fields: ["_id", "7", "name", "x"], ttlSeconds: 300),
                .refreshHash(key: rehashed, fields: ["_id", "8"]),
            ], checkpoint: .set(Self.checkpoint), events: 5, fence: "pod-a|3")
            #expect(try cluster.command(["GET", set.text]).text == "v1", "\(text)")
            #expect((1...300).contains(try cluster.command(["TTL", set.text]).integer ?? -3))
            #expect(try cluster.command(["GET", refreshed.text]).text == "v2")
            #expect((900...1000).contains(try cluster.command(["TTL", refreshed.text]).integer ?? -3), "the refresh kept the TTL")
            #expect(try cluster.command(["EXISTS", deleted.text]).integer == 0)
            #expect(try cluster.command(["HGETALL", hashed.text]).array?.compactMap(\.text) == ["_id", "7", "name", "x"])
            #expect(try cluster.command(["HGETALL", rehashed.text]).array?.compactMap(\.text) == ["_id", "8"])
            #expect((900...1000).contains(try cluster.command(["TTL", rehashed.text]).integer ?? -3), "the hash refresh kept the TTL")
            for key in all {
                #expect(try cluster.command(["EXISTS", key.leaseKey]).integer == 0, "\(key.leaseKey) removed")
            }
        }
        #expect(try applier.loadCheckpoint() == Self.checkpoint)
        #expect(try cluster.command(["HGET", keys.applied, "events"]).text == "15")
    }

    @Test("on a Redis Cluster, a batch's checkpoint goes with the next batch sent at once, runs of one kind share their letter, and TTLs left out are given before sending")
    func clusterCarriedCheckpointRunsAndTTLs() throws {
        let bed = try RedisClusterBed(replicas: false)
        defer { bed.cleanUp() }
        let cluster = bed.client()
        let keys = SyncKeys(checkpointPrefix: "cs:", namespace: "shop.products", cluster: true)
        let applier = BatchApplier(redis: cluster, keys: keys)
        func key(_ i: Int) -> CacheKey { CacheKey(text: "products:\(i)", colocatesDerivedKeys: true) }
        let first = Checkpoint.resumeAfter(["_data": .string("01")]), second = Checkpoint.resumeAfter(["_data": .string("02")])
        // 60 sets (runs of several on each master), then 20 deletes of keys planted before, then sets again.
        for i in 60..<80 { _ = try cluster.command(["SET", key(i).text, "old"]) }
        let ops: [CacheOp] = (0..<60).map { .set(key: key($0), value: "a\($0)", ttlSeconds: 100) }
            + (60..<80).map { .delete(key: key($0), reason: .deleted) }
            + (80..<100).map { .set(key: key($0), value: "a\($0)", ttlSeconds: 100) }
        // Every other set's TTL left out, given as 5000 once "read".
        let pending = ops.indices.filter { $0 % 2 == 0 && $0 < 60 }
        let prepared = applier.prepare(ops, checkpoint: .set(first), events: ops.count, ttlsPending: pending)
        var final = ops
        for index in pending { final[index] = .set(key: key(index), value: "a\(index)", ttlSeconds: 5000) }
        #expect(try applier.send(applier.withTTLs(of: final, prepared), fence: "pod-a|1"))
        try applier.awaitSent(beforeNextSend: true)
        #expect(try applier.loadCheckpoint() == nil, "held for the next batch")
        for i in 0..<100 where !(60..<80).contains(i) {
            #expect(try cluster.command(["GET", key(i).text]).text == "a\(i)")
            let ttl = try cluster.command(["TTL", key(i).text]).integer ?? -3
            #expect(pending.contains(i) ? (4900...5000).contains(ttl) : (1...100).contains(ttl), "\(i): \(ttl)")
        }
        for i in 60..<80 { #expect(try cluster.command(["EXISTS", key(i).text]).integer == 0) }
        #expect(try applier.send(applier.prepare([.delete(key: key(0), reason: .deleted)], checkpoint: .set(second),
                                                 events: 1), fence: "pod-a|1"))
        try applier.awaitSent(beforeNextSend: true)
        #expect(try applier.loadCheckpoint() == first, "written with the next batch")
        try applier.awaitSent()
        #expect(try applier.loadCheckpoint() == second, "written on its own when no batch follows")
        #expect(try cluster.command(["HGET", keys.applied, "events"]).text == "101")
        #expect(try cluster.command(["EXISTS", key(0).text]).integer == 0)
    }
}

