import BSONModel
@testable import CacheSync
import CacheSyncCore
import Foundation
import Logging
import RedisBridge
import TestSupport
import Testing

/// `ChangePipeline` fed by a scripted source, writing to a real redis-server.
@Suite("ChangePipeline: batches, checkpoints and source failures")
struct ChangePipelineTests {
    /// Hands out its events in order, then reports idle or throws `failure`.
    final class ScriptedSource: ChangeEventSource {
        struct Failure: Error {}
        private let events: [[UInt8]]
        private let failsAtEnd: Bool
        private var served = 0

        convenience init(_ events: [BSONDocument], failsAtEnd: Bool = false) {
            self.init(bytes: events.map { $0.bsonBytes() }, failsAtEnd: failsAtEnd)
        }

        init(bytes events: [[UInt8]], failsAtEnd: Bool = false) {
            self.events = events
            self.failsAtEnd = failsAtEnd
        }

        func nextEventBytes() throws -> [UInt8]? {
            guard served < events.count else {
                if failsAtEnd { throw Failure() }
                return nil
            }
            defer { served += 1 }
            return events[served]
        }

        var resumeToken: BSONDocument? { nil }
    }

    static func token(_ n: Int) -> BSONDocument { ["_data": .string("token-\(n)")] }

    /// An insert of `{_id: n, name: "product n"}` in shop.products, in the real event format.
    static func insert(_ n: Int) -> BSONDocument {
        [
            "_id": .document(token(n)),
            "operationType": .string("insert"),
            "clusterTime": .timestamp(seconds: 1_714_979_290, increment: UInt32(n)),
            "wallTime": .datetime(1_714_979_290_000),
            "ns": .document(["db": .string("shop"), "coll": .string("products")]),
            "documentKey": .document(["_id": .int32(Int32(n))]),
            "fullDocument": .document(["_id": .int32(Int32(n)), "name": .string("product \(n)")]),
        ]
    }

    /// Runs `body` with a pipeline for shop.products (update strategy) on a fresh redis-server, applying at most
    /// `maxBatchEvents` per batch and reporting to `telemetry`.
    func withPipeline(maxBatchEvents: Int = ChangePipeline.Limits().maxBatchEvents,
                      telemetry: Telemetry = Telemetry(collections: ["shop.products"]),
                      _ body: (ChangePipeline, RedisConnection, CacheSyncConfig) throws -> Void) throws {
        try withRedisServer { server in
            let config = try ConfigLoader.parse(text: """
                mongodb: { uri: "mongodb://127.0.0.1:1", database: shop }
                redis: { url: "redis://127.0.0.1:\(server.port)/0", keyPrefix: "\(server.key(""))" }
                checkpoint: { keyPrefix: "\(server.key("cs:"))" }
                collections:
                  products: { strategy: update }
                """)
            let redis = try server.connect()
            var limits = ChangePipeline.Limits()
            limits.maxBatchEvents = maxBatchEvents
            let pipeline = ChangePipeline(collection: config.collections[0], config: config, redis: redis,
                                          telemetry: telemetry, logger: Logger(label: "test"), limits: limits)
            try body(pipeline, redis, config)
        }
    }

    func cached(_ n: Int, _ redis: RedisConnection, _ config: CacheSyncConfig) throws -> String? {
        let key = CacheKey(collection: config.collections[0], keyPrefix: config.redis.keyPrefix, id: .int32(Int32(n)))
        return try redis.command(["GET", key.text]).text
    }

    func keys(_ config: CacheSyncConfig) -> SyncKeys {
        SyncKeys(checkpointPrefix: config.checkpoint.keyPrefix, namespace: "shop.products")
    }

    @Test("a batch is written with its checkpoint and its event count in one step; an empty source is idle")
    func batch() throws {
        try withPipeline { pipeline, redis, config in
            let source = ScriptedSource((1...5).map(Self.insert))
            #expect(try pipeline.pump(source) == .applied(events: 5))
            for n in 1...5 {
                #expect(try cached(n, redis, config) == #"{"_id":\#(n),"name":"product \#(n)"}"#)
            }
            #expect(try redis.command(["GET", keys(config).resume]).text == Checkpoint.resumeAfter(Self.token(5)).storedText)
            #expect(try redis.command(["HGET", keys(config).applied, "events"]).text == "5")
            guard case .idle = try pipeline.pump(source) else {
                Issue.record("an exhausted source should be idle")
                return
            }
        }
    }

    @Test("events read before the source fails are applied and checkpointed before the error is thrown")
    func failureAfterEvents() throws {
        try withPipeline { pipeline, redis, config in
            let source = ScriptedSource((1...3).map(Self.insert), failsAtEnd: true)
            var failed = false
            do {
                _ = try pipeline.pump(source)
            } catch is ScriptedSource.Failure {
                failed = true
            }
            #expect(failed, "the source's error is thrown after the batch")
            #expect(try cached(3, redis, config) != nil)
            #expect(try redis.command(["GET", keys(config).resume]).text == Checkpoint.resumeAfter(Self.token(3)).storedText)
            #expect(try redis.command(["HGET", keys(config).applied, "events"]).text == "3")
        }
    }

    @Test("a batch stops at the configured number of events; the rest follow in the next one")
    func batchLimit() throws {
        try withPipeline(maxBatchEvents: 4) { (pipeline, redis, config) throws in
            let source = ScriptedSource((1...6).map(Self.insert))
            #expect(try pipeline.pump(source) == .applied(events: 4))
            #expect(try redis.command(["GET", keys(config).resume]).text == Checkpoint.resumeAfter(Self.token(4)).storedText)
            #expect(try pipeline.pump(source) == .applied(events: 2))
            #expect(try redis.command(["HGET", keys(config).applied, "batches"]).text == "2")
        }
    }

    @Test("while a batch runs in Redis the next is read; a lease lost in between fences the next batch, not the first")
    func overlappedBatchesAndFence() throws {
        try withPipeline(maxBatchEvents: 2) { (pipeline, redis, config) throws in
            let leaseKey = keys(config).leader
            _ = try redis.command(["SET", leaseKey, "me|1"])
            pipeline.fence = { "me|1" }
            let source = ScriptedSource((1...4).map(Self.insert))
            #expect(try pipeline.pump(source) == .applied(events: 2))
            // Another instance takes the lease after the first batch was sent (the command below runs after it).
            _ = try redis.command(["SET", leaseKey, "other|2"])
            #expect(try cached(2, redis, config) != nil, "the first batch ran before the lease changed")
            let fenced = #expect(throws: FencedWriteError.self) { try pipeline.pump(source) }
            #expect(fenced?.leaseKey == leaseKey)
            #expect(try cached(3, redis, config) == nil)
            #expect(try cached(4, redis, config) == nil)
            #expect(try redis.command(["GET", keys(config).resume]).text == Checkpoint.resumeAfter(Self.token(2)).storedText)
            #expect(pipeline.lastCheckpointToken == Self.token(2), "the first batch's outcome was taken")
        }
    }

    @Test("a batch's writes and lag are recorded when its outcome is taken, the lag measured to when it was written")
    func inFlightTelemetry() throws {
        let telemetry = Telemetry(collections: ["shop.products"])
        try withPipeline(telemetry: telemetry) { (pipeline, _, _) throws in
            let source = ScriptedSource([Self.insert(1)])
            #expect(try pipeline.pump(source) == .applied(events: 1))
            let eventTime = 1_714_979_290.0
            Thread.sleep(forTimeInterval: 0.3)
            let taken = Date().timeIntervalSince1970
            try pipeline.finishInFlight()
            let stats = try #require(telemetry.snapshot()["shop.products"])
            #expect(stats.updates == 1)
            #expect(stats.lastEventTime == eventTime)
            #expect(stats.lagSeconds <= taken - eventTime - 0.25, "lag runs to when the batch was written, not taken")
        }
    }

    @Test("an event whose fullDocument is not valid BSON deletes its cached key, counts an error and is checkpointed")
    func invalidDocument() throws {
        let telemetry = Telemetry(collections: ["shop.products"])
        try withPipeline(telemetry: telemetry) { pipeline, redis, config in
            #expect(try pipeline.pump(ScriptedSource([Self.insert(1), Self.insert(2)])) == .applied(events: 2))
            try pipeline.finishInFlight()
            #expect(try cached(1, redis, config) != nil)
            var event = Self.insert(1)
            event["_id"] = .document(Self.token(3))
            var broken = event.bsonBytes()
            let string = [10, 0, 0, 0] + Array("product 1".utf8)
            let at = try #require((0...broken.count - string.count).first { broken[$0..<$0 + string.count].elementsEqual(string) })
            broken[at] = 200
            #expect(try pipeline.pump(ScriptedSource(bytes: [broken])) == .applied(events: 1))
            try pipeline.finishInFlight()
            #expect(try cached(1, redis, config) == nil, "the key of the broken document is deleted, not left stale")
            #expect(try cached(2, redis, config) != nil)
            #expect(try redis.command(["GET", keys(config).resume]).text == Checkpoint.resumeAfter(Self.token(3)).storedText)
            #expect(try #require(telemetry.snapshot()["shop.products"]).errors == 1)
        }
    }
}
