import CacheSync
import CacheSyncCore
import CHiredis
import Foundation
import RedisBridge
import RedisSlot

extension ApplyBenchmark {
    /// One strategy's apply path on a cluster beside the raw loop.
    struct ClusterResult {
        var strategy: String
        /// Each loop's rate in its best round.
        var pipelineRate = 0.0
        var rawRate = 0.0
        /// Each round's pipeline rate over its raw rate, over the same interleaved chunks.
        var roundRatios: [Double] = []
        /// Microseconds of CPU per event, in each loop's best round: the masters' main threads together, and the
        /// benchmark thread.
        var pipelineRedisMicros = 0.0, rawRedisMicros = 0.0
        var pipelineClientMicros = 0.0, rawClientMicros = 0.0
    }

    /// The apply path through a `RedisCluster` (one fenced script per master a batch touches, then the checkpoint)
    /// beside a raw loop sending the same writes as plain commands — per op its lease's `UNLINK` and its write, a
    /// `GET` per access counter, the checkpoint `SET` and `HINCRBY`s — pipelined to each key's master, every master's
    /// part written before any reply is read, as the cluster writer does. Chunks in turns on flushed masters, as
    /// `run`; the fences are raised once before the rounds (a new leader's one-time cost) and restored after each
    /// flush, untimed.
    func runCluster(rounds: Int, cluster: RedisCluster, seedPort: Int, strategies: [StrategyKind] = []) throws -> [ClusterResult] {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://127.0.0.1:1/?directConnection=true", database: bench }
            redis: { url: "redis://127.0.0.1:\(seedPort)/0", cluster: {} }
            collections:
              products:
                strategy: update
                ttl: { base: 300, tiers: [ { minAccesses: 100, ttl: 86400 }, { minAccesses: 10, ttl: 3600 } ] }
              users: { strategy: invalidate }
              sessions: { strategy: preserve-ttl }
            """, path: "bench-cluster.yaml")
        let telemetry = Telemetry(collections: config.collections.map(\.namespace))
        var results: [ClusterResult] = []
        for collection in config.collections where strategies.isEmpty || strategies.contains(collection.strategy) {
            let eventBytes = SyntheticChangeSource.events(database: collection.database, collection: collection.collection,
                                                          distinctIDs: Self.distinctIDs,
                                                          withFullDocument: collection.strategy != .invalidate)
            let keys = SyncKeys(checkpointPrefix: config.checkpoint.keyPrefix, namespace: collection.namespace, cluster: true)
            let (batches, preload) = try clusterRawBatches(eventBytes, collection: collection, config: config, keys: keys,
                                                           cluster: cluster)
            let pipeline = ChangePipeline(collection: collection, config: config, redis: cluster, telemetry: telemetry,
                                          logger: Self.logger, limits: limits)
            pipeline.fence = { Self.leaseHolder }
            // Raises the fences (the new leader's one-time step) outside the rounds.
            try prepareCluster(cluster, preload: preload, keys: keys)
            _ = try pump(pipeline, eventBytes)
            var result = ClusterResult(strategy: collection.strategy.rawValue)
            let masters = try cluster.masterConnections()
            func redisMicros() throws -> Double { try masters.reduce(0) { $0 + (try redisCPUMicros($1)) } }
            for _ in 0..<rounds {
                var pipeline3 = (seconds: 0.0, client: 0.0, redis: 0.0), raw3 = (seconds: 0.0, client: 0.0, redis: 0.0)
                for chunk in 0..<(events / chunkEvents) {
                    for pipelineTurn in chunk % 2 == 0 ? [true, false] : [false, true] {
                        try prepareCluster(cluster, preload: preload, keys: keys)
                        let redis0 = try redisMicros(), client0 = Measure.threadCPUSeconds()
                        let seconds = pipelineTurn ? try pump(pipeline, eventBytes) : try rawClusterLoop(batches)
                        let client = Measure.threadCPUSeconds() - client0, redis = try redisMicros() - redis0
                        if pipelineTurn {
                            pipeline3 = (pipeline3.seconds + seconds, pipeline3.client + client, pipeline3.redis + redis)
                        } else {
                            raw3 = (raw3.seconds + seconds, raw3.client + client, raw3.redis + redis)
                        }
                    }
                }
                let perEvent = Double(events)
                let pipelineRate = perEvent / pipeline3.seconds, rawRate = perEvent / raw3.seconds
                result.roundRatios.append(pipelineRate / rawRate)
                if pipelineRate > result.pipelineRate {
                    result.pipelineRate = pipelineRate
                    result.pipelineRedisMicros = pipeline3.redis / perEvent
                    result.pipelineClientMicros = pipeline3.client * 1e6 / perEvent
                }
                if rawRate > result.rawRate {
                    result.rawRate = rawRate
                    result.rawRedisMicros = raw3.redis / perEvent
                    result.rawClientMicros = raw3.client * 1e6 / perEvent
                }
            }
            results.append(result)
        }
        return results
    }

    /// One chunk through `pipeline`: the seconds from the first read to the last outcome.
    private func pump(_ pipeline: ChangePipeline, _ eventBytes: [[UInt8]]) throws -> Double {
        let source = SyntheticChangeSource(events: eventBytes, total: chunkEvents)
        var applied = 0
        let started = Measure.now()
        while case .applied(let count) = try pipeline.pump(source) { applied += count }
        guard applied == chunkEvents else { throw BenchError("the pipeline applied \(applied) of \(chunkEvents) events") }
        return Measure.now() - started
    }

    /// Empties every master, preloads the keys preserve-ttl refreshes, and sets every slot's fence to the lease's
    /// epoch as the pipeline raised it.
    private func prepareCluster(_ cluster: RedisCluster, preload: [[[UInt8]]], keys: SyncKeys) throws {
        for master in try cluster.masterConnections() { _ = try master.command(["FLUSHALL"]) }
        let epoch = String(Self.leaseHolder.split(separator: "|").last!)
        let fences = (0..<RedisSlot.count).map { slot in
            [Array("HSET".utf8), Array(keys.fence(slot: slot).utf8), Array(keys.namespace.utf8), Array(epoch.utf8)]
        }
        let all = preload + fences
        for start in stride(from: 0, to: all.count, by: 2000) {
            try cluster.throwFirstError(in: try cluster.pipeline(Array(all[start..<min(start + 2000, all.count)])))
        }
    }

    /// One batch of the raw cluster loop: per master, its commands as one RESP buffer and how many replies.
    struct ClusterRawBatch {
        var parts: [(connection: RedisConnection, resp: [UInt8], replies: Int)]
    }

    /// The plain commands of each batch of the synthetic source, planned by the real planner with the cluster's key
    /// layout, grouped by master; and the keys preserve-ttl needs cached beforehand.
    private func clusterRawBatches(_ eventBytes: [[UInt8]], collection: CollectionConfig, config: CacheSyncConfig,
                                   keys: SyncKeys, cluster: RedisCluster) throws -> ([ClusterRawBatch], [[[UInt8]]]) {
        let layout = CacheKey.Layout(collection: collection, keyPrefix: config.redis.keyPrefix, colocatingDerivedKeys: true)
        let source = SyntheticChangeSource(events: eventBytes, total: chunkEvents)
        var batches: [ClusterRawBatch] = []
        var preload: [[[UInt8]]] = []
        var reads: [[[UInt8]]] = [], writes: [[[UInt8]]] = []
        var lastToken = ""
        var inBatch = 0
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        func grouped(_ commands: [[[UInt8]]]) throws -> ClusterRawBatch {
            var order: [ObjectIdentifier] = []
            var parts: [ObjectIdentifier: (connection: RedisConnection, resp: [UInt8], replies: Int)] = [:]
            for command in commands {
                let connection = try cluster.connection(forSlot: RedisCluster.slot(of: command)!)
                let id = ObjectIdentifier(connection)
                if parts[id] == nil {
                    order.append(id)
                    parts[id] = (connection, [], 0)
                }
                parts[id]!.resp += RedisCommandBatch([command]).bytes
                parts[id]!.replies += 1
            }
            return ClusterRawBatch(parts: order.map { parts[$0]! })
        }
        while let raw = try source.nextEventBytes() {
            let event = try ChangeEvent(bsonBytes: raw, decoding: .forApplying)
            lastToken = Checkpoint.resumeAfter(event.resumeToken).storedText
            var ops: [CacheOp] = []
            Strategy.plan(event: event, collection: collection, keys: layout, accessCount: 0, into: &ops)
            for op in ops {
                guard let key = op.key else { throw BenchError("unexpected planned op \(op)") }
                if Strategy.ttlFollowsAccessCount(op, collection: collection) {
                    reads.append([bytes("GET"), bytes(key.accessCountKey)])
                }
                writes.append([bytes("UNLINK"), bytes(key.leaseKey)])
                switch op {
                case .set(_, let value, let ttl):
                    writes.append([bytes("SET"), bytes(key.text), bytes(value), bytes("EX"), bytes(String(ttl))])
                case .refresh(_, let value):
                    writes.append([bytes("SET"), bytes(key.text), bytes(value), bytes("XX"), bytes("KEEPTTL")])
                    preload.append([bytes("SET"), bytes(key.text), bytes(value), bytes("EX"), bytes("3600")])
                case .delete:
                    writes.append([bytes("UNLINK"), bytes(key.text)])
                case .skip, .flushCollection, .indexSet, .indexDelete, .setHash, .refreshHash:
                    throw BenchError("unexpected planned op \(op)")
                }
            }
            inBatch += 1
            if inBatch == Self.batchSize {
                // The counters are read before the writes (their TTLs depend on them), the checkpoint written after.
                if !reads.isEmpty { batches.append(try grouped(reads)) }
                batches.append(try grouped(writes))
                batches.append(try grouped([
                    [bytes("SET"), bytes(keys.resume), bytes(lastToken)],
                    [bytes("HINCRBY"), bytes(keys.applied), bytes("events"), bytes(String(Self.batchSize))],
                    [bytes("HINCRBY"), bytes(keys.applied), bytes("batches"), bytes("1")],
                ]))
                reads = []
                writes = []
                inBatch = 0
            }
        }
        return (batches, preload)
    }

    /// Sends each step's parts: every master's written whole, then their replies read (the masters work at once,
    /// as the cluster writer's are): the seconds taken.
    private func rawClusterLoop(_ batches: [ClusterRawBatch]) throws -> Double {
        let started = Measure.now()
        for batch in batches {
            for part in batch.parts {
                try part.connection.withUnsafeHandle { try Self.rawWrite($0, part.resp) }
            }
            for part in batch.parts {
                try part.connection.withUnsafeHandle { try Self.rawRead($0, replies: part.replies) }
            }
        }
        return Measure.now() - started
    }
}
