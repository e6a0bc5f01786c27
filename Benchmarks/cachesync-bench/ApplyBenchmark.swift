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
        /// Each loop's rate in its best round.
        var pipelineRate = 0.0
        var rawRate = 0.0
        /// Microseconds of Redis CPU per event (`INFO cpu`, main thread), in each loop's best round.
        var pipelineRedisMicros = 0.0
        var rawRedisMicros = 0.0
        /// Microseconds of this process's CPU per event (the benchmark thread), in each loop's best round.
        var pipelineClientMicros = 0.0
        var rawClientMicros = 0.0
        /// Each round's pipeline rate over its raw rate, both over the same interleaved chunks.
        var roundRatios: [Double] = []
    }

    /// What one loop did in a chunk, or in a round (summed over its chunks).
    private struct Tally {
        var seconds = 0.0
        /// This thread's CPU time.
        var clientSeconds = 0.0
        /// Redis's main thread's CPU time (`INFO cpu`).
        var redisMicros = 0.0

        mutating func add(_ chunk: Tally, redisMicros: Double) {
            seconds += chunk.seconds
            clientSeconds += chunk.clientSeconds
            self.redisMicros += redisMicros
        }
    }

    let redisPort: Int
    /// Events per loop and round: whole chunks.
    let events: Int
    /// Events per chunk: whole batches, at most `distinctIDs`.
    let chunkEvents: Int
    /// Whether the benchmark thread and Redis are pinned to two CPUs (when there are two).
    let pinned: Bool
    /// How the pipeline gathers batches.
    let limits: ChangePipeline.Limits
    /// Distinct documents the events cycle through: a multiple of the batch size, so batch contents repeat.
    static let distinctIDs = 256 * 40
    static let batchSize = 256
    /// The lease value the pipeline is fenced with (`<instanceId>|<epoch>`).
    static let leaseHolder = "bench|1"

    /// `events` per loop and round in chunks of `chunkEvents`: a chunk rounded down to whole batches, at most
    /// `distinctIDs` and `events`; the events rounded down to whole chunks.
    init(redisPort: Int, events: Int, chunkEvents: Int, pinned: Bool, limits: ChangePipeline.Limits) {
        self.redisPort = redisPort
        let batch = Self.batchSize
        self.chunkEvents = max(batch, min(chunkEvents, Self.distinctIDs, events) / batch * batch)
        self.events = max(1, events / self.chunkEvents) * self.chunkEvents
        self.pinned = pinned
        self.limits = limits
    }

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

    /// The shaped collection of the apply path (not of the TLS and cluster runs): the update strategy with a
    /// projection, a filter (a third of the synthetic documents are inactive, so their keys are deleted) and one
    /// secondary key (its record beside each document), in a config of its own.
    var shapedCollection: CollectionConfig {
        get throws {
            try ConfigLoader.parse(text: """
                mongodb: { uri: "mongodb://127.0.0.1:1/?directConnection=true", database: bench }
                redis: { url: "redis://127.0.0.1:\(redisPort)/0" }
                collections:
                  shaped:
                    strategy: update
                    ttl: { base: 300, tiers: [ { minAccesses: 100, ttl: 86400 }, { minAccesses: 10, ttl: 3600 } ] }
                    project: { tags: 0, "stock.us": 0 }
                    filter: { active: true }
                    indexes: [ { key: "sku:{sku}" } ]
                """, path: "bench.yaml").collections[0]
        }
    }

    /// Runs every strategy `rounds` times. A round interleaves the two loops chunk by chunk — pipeline then raw,
    /// then raw then pipeline, and so on — each chunk on a flushed database with the same keys and the same
    /// events, so both loops run through the same phases of the machine; a round's ratio is the raw loop's time
    /// over the pipeline's, summed over its chunks. When `pinned` and there are two CPUs or more, this thread and
    /// Redis's main thread are pinned to two different CPUs, swapped every two chunks, so both loops run as long
    /// in either placement (this machine's two CPUs can differ in speed by half, and the two loops do not load
    /// them alike: the pipeline's client is the busier side, the raw loop's Redis). `strategies` names the
    /// strategies to run; empty runs all three; `update` includes the shaped collection.
    func run(rounds: Int, strategies: [StrategyKind] = []) throws -> [Result] {
        let config = try config
        let redis = try RedisConnection(options: RedisConnectionOptions(host: "127.0.0.1", port: redisPort))
        let placement = pinned ? try CPUPlacement(redisPID: redisProcessID(redis)) : nil
        defer { placement?.restore() }
        let telemetry = Telemetry(collections: config.collections.map(\.namespace))
        var results: [Result] = []
        for collection in config.collections + [try shapedCollection]
        where strategies.isEmpty || strategies.contains(collection.strategy) {
            let (eventBytes, chunkBatches) = try input(collection, config: config)
            var result = Result(strategy: collection.indexes.isEmpty ? collection.strategy.rawValue
                                    : "\(collection.strategy.rawValue) + project, filter, secondary key")
            for _ in 0..<rounds {
                var pipelineTally = Tally(), rawTally = Tally()
                for chunk in 0..<(events / chunkEvents) {
                    try placement?.place(swapped: chunk / 2 % 2 == 1)
                    for pipelineTurn in chunk % 2 == 0 ? [true, false] : [false, true] {
                        try prepare(redis, batches: chunkBatches)
                        let redisCPU0 = try redisCPUMicros(redis)
                        let tally = if pipelineTurn {
                            try pipelineChunk(collection, config: config, eventBytes: eventBytes, redis: redis,
                                              telemetry: telemetry)
                        } else {
                            try rawLoop(redis, batches: chunkBatches)
                        }
                        let redisMicros = try redisCPUMicros(redis) - redisCPU0
                        if pipelineTurn {
                            pipelineTally.add(tally, redisMicros: redisMicros)
                        } else {
                            rawTally.add(tally, redisMicros: redisMicros)
                        }
                    }
                }
                let perEvent = Double(events)
                let pipelineRate = perEvent / pipelineTally.seconds, rawRate = perEvent / rawTally.seconds
                result.roundRatios.append(pipelineRate / rawRate)
                if pipelineRate > result.pipelineRate {
                    result.pipelineRate = pipelineRate
                    result.pipelineRedisMicros = pipelineTally.redisMicros / perEvent
                    result.pipelineClientMicros = pipelineTally.clientSeconds * 1e6 / perEvent
                }
                if rawRate > result.rawRate {
                    result.rawRate = rawRate
                    result.rawRedisMicros = rawTally.redisMicros / perEvent
                    result.rawClientMicros = rawTally.clientSeconds * 1e6 / perEvent
                }
            }
            results.append(result)
        }
        return results
    }

    /// One strategy's apply path over TLS beside the same over plaintext.
    struct TLSResult {
        var strategy: String
        /// Each side's rate in its best round.
        var tlsRate = 0.0
        var plainRate = 0.0
        /// Each round's TLS rate over its plaintext rate, over the same interleaved chunks.
        var roundRatios: [Double] = []
    }

    /// The apply path through a connection to a TLS-only server (`tls`) beside the same through a plaintext one
    /// (this benchmark's server), per strategy and round: the same chunks in turns (TLS first, then plaintext
    /// first, …), each on a flushed database, unpinned (the two sides are two servers). A round's ratio is the TLS
    /// rate over the plaintext rate.
    func runTLS(rounds: Int, tls: RedisConnectionOptions, strategies: [StrategyKind] = []) throws -> [TLSResult] {
        let config = try config
        let plain = try RedisConnection(options: RedisConnectionOptions(host: "127.0.0.1", port: redisPort))
        let secure = try RedisConnection(options: tls)
        let telemetry = Telemetry(collections: config.collections.map(\.namespace))
        var results: [TLSResult] = []
        for collection in config.collections where strategies.isEmpty || strategies.contains(collection.strategy) {
            let (eventBytes, chunkBatches) = try input(collection, config: config)
            var result = TLSResult(strategy: collection.strategy.rawValue)
            for _ in 0..<rounds {
                var tlsSeconds = 0.0, plainSeconds = 0.0
                for chunk in 0..<(events / chunkEvents) {
                    for overTLS in chunk % 2 == 0 ? [true, false] : [false, true] {
                        let redis = overTLS ? secure : plain
                        try prepare(redis, batches: chunkBatches)
                        let seconds = try pipelineChunk(collection, config: config, eventBytes: eventBytes, redis: redis,
                                                        telemetry: telemetry).seconds
                        if overTLS { tlsSeconds += seconds } else { plainSeconds += seconds }
                    }
                }
                let tlsRate = Double(events) / tlsSeconds, plainRate = Double(events) / plainSeconds
                result.roundRatios.append(tlsRate / plainRate)
                result.tlsRate = max(result.tlsRate, tlsRate)
                result.plainRate = max(result.plainRate, plainRate)
            }
            results.append(result)
        }
        return results
    }

    /// One strategy's input: its events as BSON bytes, and one chunk's batches as the raw loop sends them (and
    /// `prepare` preloads them).
    private func input(_ collection: CollectionConfig, config: CacheSyncConfig) throws -> ([[UInt8]], [RawBatch]) {
        let eventBytes = SyntheticChangeSource.events(database: collection.database, collection: collection.collection,
                                                      distinctIDs: Self.distinctIDs,
                                                      withFullDocument: collection.strategy != .invalidate)
        let batches = try rawBatches(eventBytes, collection: collection, config: config)
        return (eventBytes, Array(batches.prefix(chunkEvents / Self.batchSize)))
    }

    /// The pipeline's logger: errors only.
    static let logger: Logger = {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        return logger
    }()

    /// One chunk through a new pipeline, fenced by the collection's lease as the watcher is by default (this
    /// instance holds it): the time and this thread's CPU time from the first read to the last outcome.
    private func pipelineChunk(_ collection: CollectionConfig, config: CacheSyncConfig, eventBytes: [[UInt8]],
                               redis: RedisConnection, telemetry: Telemetry) throws -> Tally {
        let lease = SyncKeys(checkpointPrefix: config.checkpoint.keyPrefix, namespace: collection.namespace).leader
        _ = try redis.command(["SET", lease, Self.leaseHolder])
        let pipeline = ChangePipeline(collection: collection, config: config, redis: redis, telemetry: telemetry,
                                      logger: Self.logger, limits: limits)
        pipeline.fence = { Self.leaseHolder }
        let source = SyntheticChangeSource(events: eventBytes, total: chunkEvents)
        var applied = 0
        let started = Measure.now(), startedCPU = Measure.threadCPUSeconds()
        while case .applied(let count) = try pipeline.pump(source) { applied += count }
        let tally = Tally(seconds: Measure.now() - started, clientSeconds: Measure.threadCPUSeconds() - startedCPU)
        guard applied == chunkEvents else { throw BenchError("the pipeline applied \(applied) of \(chunkEvents) events") }
        return tally
    }

    /// The Redis server's process id (`INFO server`).
    private func redisProcessID(_ redis: RedisConnection) throws -> pid_t {
        let info = try redis.command(["INFO", "server"]).text ?? ""
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("process_id:") {
            if let pid = pid_t(line.dropFirst("process_id:".count)) { return pid }
        }
        throw BenchError("INFO server gave no process_id")
    }

    /// Microseconds of CPU the Redis server's main thread has used (`INFO cpu`): parsing, executing, replying.
    func redisCPUMicros(_ redis: RedisConnection) throws -> Double {
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
    /// plain commands: `MGET` of the access counters (update), with secondary keys the `MGET` of the documents'
    /// records, per event the cache write, the secondary keys' writes (as `IndexPlanner` plans them on a flushed
    /// database, where no record exists yet), one `UNLINK` of the batch's read-through leases, then the checkpoint
    /// `SET` and the applied-counter `HINCRBY`s.
    private func rawBatches(_ eventBytes: [[UInt8]], collection: CollectionConfig, config: CacheSyncConfig) throws -> [RawBatch] {
        let keyPrefix = config.redis.keyPrefix
        let keys = SyncKeys(checkpointPrefix: config.checkpoint.keyPrefix, namespace: collection.namespace)
        let source = SyntheticChangeSource(events: eventBytes, total: eventBytes.count)
        var batches: [RawBatch] = []
        var commands: [[[UInt8]]] = []
        var countKeys: [[UInt8]] = []
        var leases: [[UInt8]] = []
        var preload: [[[UInt8]]] = []
        var changes: [IndexPlanner.Change] = []
        var events = 0
        var lastToken = ""
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        while let raw = try source.nextEventBytes() {
            let event = try ChangeEvent(bsonBytes: raw, decoding: .forApplying)
            lastToken = Checkpoint.resumeAfter(event.resumeToken).storedText
            events += 1
            for op in Strategy.plan(event: event, collection: collection, keyPrefix: keyPrefix, accessCount: 0) {
                if !collection.indexes.isEmpty,
                   var change = IndexPlanner.change(for: event, preImage: nil, primary: op, collection: collection,
                                                    keyPrefix: keyPrefix).change {
                    change.ttlSeconds = IndexPlanner.ttl(following: op, collection: collection)
                    changes.append(change)
                }
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
                case .skip, .flushCollection, .indexSet, .indexDelete, .setHash, .refreshHash:
                    throw BenchError("unexpected planned op \(op)")
                }
                leases.append(bytes(op.key!.leaseKey))
            }
            if events == Self.batchSize {
                if !changes.isEmpty {
                    let planner = IndexPlanner(changes: changes, keepsRecords: true)
                    let records = planner.recordsToRead
                    commands.insert([bytes("MGET")] + records.map(bytes), at: 0)
                    let none = [String?](repeating: nil, count: records.count)
                    guard planner.oldKeysToRead(records: none).isEmpty else { throw BenchError("old keys on a flushed database") }
                    for op in planner.ops(records: none, oldKeys: [], oldValues: []) {
                        switch op {
                        case .indexSet(let key, let value, let ttl):
                            commands.append([bytes("SET"), bytes(key), bytes(value), bytes("EX"), bytes(String(ttl))])
                        case .indexDelete(let key):
                            commands.append([bytes("UNLINK"), bytes(key)])
                        default:
                            throw BenchError("unexpected index op \(op)")
                        }
                    }
                }
                if !countKeys.isEmpty { commands.insert([bytes("MGET")] + countKeys, at: 0) }
                commands += [
                    [bytes("UNLINK")] + leases,
                    [bytes("SET"), bytes(keys.resume), bytes(lastToken)],
                    [bytes("HINCRBY"), bytes(keys.applied), bytes("events"), bytes(String(Self.batchSize))],
                    [bytes("HINCRBY"), bytes(keys.applied), bytes("batches"), bytes("1")],
                ]
                batches.append(RawBatch(resp: commands.flatMap(Self.resp), replies: commands.count, preload: preload))
                commands = []
                countKeys = []
                leases = []
                preload = []
                changes = []
                events = 0
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

    /// Sends the batches, each written whole and then its replies read: the time and this thread's CPU time.
    private func rawLoop(_ redis: RedisConnection, batches: [RawBatch]) throws -> Tally {
        try redis.withUnsafeHandle { context in
            let started = Measure.now(), startedCPU = Measure.threadCPUSeconds()
            for batch in batches { try Self.rawRoundTrip(context, batch.resp, replies: batch.replies) }
            return Tally(seconds: Measure.now() - started, clientSeconds: Measure.threadCPUSeconds() - startedCPU)
        }
    }
}

extension ApplyBenchmark {
    /// Writes `resp` (pre-encoded commands) whole through hiredis, then reads and frees `replies` replies; an error
    /// reply throws.
    static func rawRoundTrip(_ context: UnsafeMutablePointer<redisContext>, _ resp: [UInt8], replies: Int) throws {
        try rawWrite(context, resp)
        try rawRead(context, replies: replies)
    }

    /// Writes `resp` (pre-encoded commands) whole to the socket.
    static func rawWrite(_ context: UnsafeMutablePointer<redisContext>, _ resp: [UInt8]) throws {
        let status = resp.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        guard status == REDIS_OK else { throw BenchError("hiredis append failed") }
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw BenchError("hiredis write failed") }
        }
    }

    /// Reads and frees `replies` replies; an error reply throws.
    static func rawRead(_ context: UnsafeMutablePointer<redisContext>, replies: Int) throws {
        for _ in 0..<replies {
            var reply: UnsafeMutableRawPointer?
            guard redisGetReply(context, &reply) == REDIS_OK, let reply else { throw BenchError("hiredis read failed") }
            if reply.assumingMemoryBound(to: redisReply.self).pointee.type == REDIS_REPLY_ERROR {
                throw BenchError("Redis answered an error in the raw loop")
            }
            freeReplyObject(reply)
        }
    }
}

/// A benchmark that could not run.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Pins the calling thread and another process's main thread to two different CPUs of the calling thread's
/// affinity, either way round; `nil` when it has fewer than two CPUs. (Glibc's module leaves out the
/// `_GNU_SOURCE` calls `sched_getaffinity` and `sched_setaffinity`: they are looked up by name.)
struct CPUPlacement {
    private typealias Affinity = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32
    private let getAffinity: Affinity
    private let setAffinity: Affinity
    private let redisPID: pid_t
    private let cpus: (Int, Int)
    private let original: cpu_set_t

    init?(redisPID: pid_t) {
        guard let get = dlsym(nil, "sched_getaffinity"), let set = dlsym(nil, "sched_setaffinity") else { return nil }
        getAffinity = unsafeBitCast(get, to: Affinity.self)
        setAffinity = unsafeBitCast(set, to: Affinity.self)
        var original = cpu_set_t()
        guard getAffinity(0, MemoryLayout<cpu_set_t>.size, &original) == 0 else { return nil }
        let allowed = (0..<(MemoryLayout<cpu_set_t>.size * 8)).filter { Self.contains(original, $0) }
        guard allowed.count >= 2 else { return nil }
        self.redisPID = redisPID
        self.original = original
        cpus = (allowed[0], allowed[1])
    }

    /// This thread on the first CPU and the other process on the second, or the other way round; throws when
    /// either cannot be pinned (`--no-pin` runs without).
    func place(swapped: Bool) throws {
        let (mine, other) = swapped ? (cpus.1, cpus.0) : (cpus.0, cpus.1)
        var set = Self.only(mine)
        guard setAffinity(0, MemoryLayout<cpu_set_t>.size, &set) == 0 else {
            throw BenchError("cannot pin the benchmark thread to CPU \(mine) (errno \(errno)); try --no-pin")
        }
        set = Self.only(other)
        guard setAffinity(redisPID, MemoryLayout<cpu_set_t>.size, &set) == 0 else {
            throw BenchError("cannot pin redis-server (pid \(redisPID)) to CPU \(other) (errno \(errno)); try --no-pin")
        }
    }

    /// This thread's affinity as it was (the other process ends with the benchmark's server).
    func restore() {
        var set = original
        _ = setAffinity(0, MemoryLayout<cpu_set_t>.size, &set)
    }

    private static func contains(_ set: cpu_set_t, _ cpu: Int) -> Bool {
        withUnsafeBytes(of: set) { $0[cpu / 8] & UInt8(1 << (cpu % 8)) != 0 }
    }

    private static func only(_ cpu: Int) -> cpu_set_t {
        var set = cpu_set_t()
        withUnsafeMutableBytes(of: &set) { $0[cpu / 8] = UInt8(1 << (cpu % 8)) }
        return set
    }
}
