import BSONModel
import CacheSync
import CacheSyncCore
import CHiredis
import Foundation
import Logging
import RedisBridge

/// The apply path per strategy — decoding, planning, batching and the atomic Redis step, fed by a synthetic
/// source — beside the same Redis commands sent pre-encoded through a raw pipelined hiredis loop.
struct ApplyBenchmark {
    /// One strategy's figures.
    struct Result {
        var strategy: String
        var events: Int
        var pipelineRate: Double
        var rawRate: Double
        /// Microseconds of Redis CPU per event (`INFO cpu`, main thread), in each loop.
        var pipelineRedisMicros: Double
        var rawRedisMicros: Double
        /// Microseconds of this process's CPU per event (the benchmark thread), in each loop.
        var pipelineClientMicros: Double
        var rawClientMicros: Double
        /// Each round's pipeline rate over its raw rate (the two loops run back to back): less moved by a slow
        /// phase of the machine that hits one loop's best round but not the other's.
        var roundRatios: [Double] = []
        var ratio: Double { pipelineRate / rawRate }
    }

    let redisPort: Int
    let events: Int
    /// How the pipeline gathers batches.
    let limits: ChangePipeline.Limits
    /// Distinct documents the events cycle through: a multiple of the batch size, so batch contents repeat.
    let distinctIDs = 256 * 40
    let batchSize = 256
    /// The lease value the pipeline is fenced with (`<instanceId>|<epoch>`).
    static let leaseHolder = "bench|1"

    /// The config both loops use: one collection per strategy, the default key layout and TTL tiers.
    var config: CacheSyncConfig {
        get throws {
            try ConfigLoader.parse(text: """
                mongodb: { uri: "mongodb://127.0.0.1:1/?directConnection=true", database: bench }
                redis: { url: "redis://127.0.0.1:\(redisPort)/0" }
                collections:
                  products:
                    strategy: update
                    ttl: { base: 300, tiers: [ { minAccesses: 100, ttl: 86400 }, { minAccesses: 10, ttl: 3600 } ] }
                  users: { strategy: invalidate }
                  sessions: { strategy: preserve-ttl }
                """, path: "bench.yaml")
        }
    }

    /// Runs every strategy `rounds` times, each round the pipeline then the raw loop on a flushed database with
    /// the same keys; keeps each loop's best round (the machine's noise only ever slows a run down). `strategies`
    /// names the strategies to run; empty runs all three.
    func run(rounds: Int, strategies: [StrategyKind] = []) throws -> [Result] {
        let config = try config
        let redis = try RedisConnection(options: RedisConnectionOptions(host: "127.0.0.1", port: redisPort))
        let telemetry = Telemetry(collections: config.collections.map(\.namespace))
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        var results: [Result] = []
        for collection in config.collections where strategies.isEmpty || strategies.contains(collection.strategy) {
            let batches = try rawBatches(collection: collection, config: config)
            var best = Result(strategy: collection.strategy.rawValue, events: events, pipelineRate: 0, rawRate: 0,
                              pipelineRedisMicros: 0, rawRedisMicros: 0, pipelineClientMicros: 0, rawClientMicros: 0)
            for _ in 0..<rounds {
                let source = SyntheticChangeSource(database: collection.database, collection: collection.collection,
                                                   total: events, distinctIDs: distinctIDs,
                                                   withFullDocument: collection.strategy != .invalidate)
                try prepare(redis, batches: batches)
                let pipelineCPU0 = try redisCPUMicros(redis)
                let pipeline = ChangePipeline(collection: collection, config: config, redis: redis, telemetry: telemetry,
                                              logger: logger, limits: limits)
                // Fenced by the collection's lease, as the watcher is by default: this instance holds it.
                let lease = SyncKeys(checkpointPrefix: config.checkpoint.keyPrefix, namespace: collection.namespace).leader
                _ = try redis.command(["SET", lease, Self.leaseHolder])
                pipeline.fence = { Self.leaseHolder }
                let started = Measure.now(), startedCPU = Measure.threadCPUSeconds()
                var applied = 0
                while case .applied(let count) = try pipeline.pump(source) { applied += count }
                let pipelineRate = Double(events) / (Measure.now() - started)
                let pipelineClientMicros = (Measure.threadCPUSeconds() - startedCPU) * 1e6 / Double(events)
                guard applied == events else { throw BenchError("the pipeline applied \(applied) of \(events) events") }
                if pipelineRate > best.pipelineRate {
                    best.pipelineRate = pipelineRate
                    best.pipelineRedisMicros = (try redisCPUMicros(redis) - pipelineCPU0) / Double(events)
                    best.pipelineClientMicros = pipelineClientMicros
                }

                try prepare(redis, batches: batches)
                let rawCPU0 = try redisCPUMicros(redis)
                let rawStartedCPU = Measure.threadCPUSeconds()
                let rawRate = Double(events) / (try rawLoop(redis, batches: batches))
                best.roundRatios.append(pipelineRate / rawRate)
                if rawRate > best.rawRate {
                    best.rawRate = rawRate
                    best.rawRedisMicros = (try redisCPUMicros(redis) - rawCPU0) / Double(events)
                    best.rawClientMicros = (Measure.threadCPUSeconds() - rawStartedCPU) * 1e6 / Double(events)
                }
            }
            results.append(best)
        }
        return results
    }

    /// Microseconds of CPU the Redis server's main thread has used (`INFO cpu`): parsing, executing, replying.
    private func redisCPUMicros(_ redis: RedisConnection) throws -> Double {
        let info = try redis.command(["INFO", "cpu"]).text ?? ""
        var total = 0.0
        for line in info.split(whereSeparator: \.isNewline)
        where line.hasPrefix("used_cpu_sys_main_thread:") || line.hasPrefix("used_cpu_user_main_thread:") {
            total += Double(line.split(separator: ":")[1]) ?? 0
        }
        return total * 1e6
    }

    /// Empties the database and, for preserve-ttl, caches every document first so `SET … XX KEEPTTL` writes.
    private func prepare(_ redis: RedisConnection, batches: [RawBatch]) throws {
        _ = try redis.command(["FLUSHALL"])
        let preload = batches.flatMap(\.preload)
        for start in stride(from: 0, to: preload.count, by: 1000) {
            _ = try redis.pipeline(Array(preload[start..<min(start + 1000, preload.count)]))
        }
    }

    /// One batch of the raw loop: its commands as one RESP buffer, and how many replies they produce.
    struct RawBatch {
        var resp: [UInt8]
        var replies: Int
        var preload: [[[UInt8]]]
    }

    /// The commands the applier sends for each batch of the synthetic source, planned by the real planner, as
    /// plain commands: `MGET` of the access counters (update), per event the cache write, one `UNLINK` of the
    /// batch's read-through leases, then the checkpoint `SET` and the applied-counter `HINCRBY`s.
    private func rawBatches(collection: CollectionConfig, config: CacheSyncConfig) throws -> [RawBatch] {
        let keyPrefix = config.redis.keyPrefix
        let keys = SyncKeys(checkpointPrefix: config.checkpoint.keyPrefix, namespace: collection.namespace)
        let source = SyntheticChangeSource(database: collection.database, collection: collection.collection,
                                           total: distinctIDs, distinctIDs: distinctIDs,
                                           withFullDocument: collection.strategy != .invalidate)
        var batches: [RawBatch] = []
        var commands: [[[UInt8]]] = []
        var countKeys: [[UInt8]] = []
        var leases: [[UInt8]] = []
        var preload: [[[UInt8]]] = []
        var lastToken = ""
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        while let raw = try source.nextEventBytes() {
            let event = try ChangeEvent(bsonBytes: raw, decoding: .forApplying)
            lastToken = Checkpoint.resumeAfter(event.resumeToken).storedText
            for op in Strategy.plan(event: event, collection: collection, keyPrefix: keyPrefix, accessCount: 0) {
                if Strategy.ttlFollowsAccessCount(op, collection: collection) {
                    countKeys.append(bytes(op.key!.accessCountKey))
                }
                switch op {
                case .set(let key, let value, let ttl):
                    commands.append([bytes("SET"), bytes(key.text), bytes(value), bytes("EX"), bytes(String(ttl))])
                case .refresh(let key, let value):
                    commands.append([bytes("SET"), bytes(key.text), bytes(value), bytes("XX"), bytes("KEEPTTL")])
                    preload.append([bytes("SET"), bytes(key.text), bytes(value), bytes("EX"), bytes("3600")])
                case .delete(let key, _):
                    commands.append([bytes("UNLINK"), bytes(key.text)])
                case .skip, .flushCollection:
                    throw BenchError("unexpected planned op \(op)")
                }
                leases.append(bytes(op.key!.leaseKey))
            }
            if commands.count == batchSize {
                if !countKeys.isEmpty { commands.insert([bytes("MGET")] + countKeys, at: 0) }
                commands += [
                    [bytes("UNLINK")] + leases,
                    [bytes("SET"), bytes(keys.resume), bytes(lastToken)],
                    [bytes("HINCRBY"), bytes(keys.applied), bytes("events"), bytes(String(batchSize))],
                    [bytes("HINCRBY"), bytes(keys.applied), bytes("batches"), bytes("1")],
                ]
                batches.append(RawBatch(resp: commands.flatMap(Self.resp), replies: commands.count, preload: preload))
                commands = []
                countKeys = []
                leases = []
                preload = []
            }
        }
        return batches
    }

    /// A command in the Redis protocol.
    private static func resp(_ command: [[UInt8]]) -> [UInt8] {
        var out = Array("*\(command.count)\r\n".utf8)
        for argument in command {
            out += Array("$\(argument.count)\r\n".utf8) + argument + [13, 10]
        }
        return out
    }

    /// Sends `events / batchSize` batches, each written whole and then its replies read; returns the seconds.
    private func rawLoop(_ redis: RedisConnection, batches: [RawBatch]) throws -> Double {
        try redis.withUnsafeHandle { context in
            let started = Measure.now()
            for index in 0..<(events / batchSize) {
                let batch = batches[index % batches.count]
                let status = batch.resp.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
                }
                guard status == REDIS_OK else { throw BenchError("hiredis append failed") }
                for _ in 0..<batch.replies {
                    var reply: UnsafeMutableRawPointer?
                    guard redisGetReply(context, &reply) == REDIS_OK, let reply else { throw BenchError("hiredis read failed") }
                    if reply.assumingMemoryBound(to: redisReply.self).pointee.type == REDIS_REPLY_ERROR {
                        throw BenchError("Redis answered an error in the raw loop")
                    }
                    freeReplyObject(reply)
                }
            }
            return Measure.now() - started
        }
    }
}

/// A benchmark that could not run.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
