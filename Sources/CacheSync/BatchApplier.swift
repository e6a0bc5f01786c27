import CacheSyncCore
import Foundation
import RedisBridge

/// Writes planned cache operations and the resume checkpoint to Redis in one `MULTI`/`EXEC` transaction, fenced
/// by the collection's lease (`WATCH` on the lease key, whose value must be this instance's), so the checkpoint
/// never runs ahead of what was applied and an ex-leader writes nothing.
///
/// Every op also removes the key's read-through lease (`<key>:lease`), so a reader that started before the
/// change cannot store an older document.
///
/// On a Redis Cluster a batch cannot be one transaction: `ClusterBatchWriter` writes it slot by slot, fenced in each.
struct BatchApplier {
    /// What the checkpoint becomes with a write.
    enum CheckpointChange {
        case keep
        case set(Checkpoint)
        case delete
    }

    /// What the warm-up position (`SyncKeys.warmup`) becomes with a write.
    enum WarmupChange {
        case keep
        /// Its stored text (`WarmupPosition.storedText`).
        case set(String)
        case delete
    }

    /// A batch laid out for sending: the transaction's commands, or for a cluster the ops themselves.
    enum Prepared {
        case transaction(RedisCommandBatch)
        case slotted(ClusterBatchWriter.Plan)
    }

    /// `format: hash`'s refresh: KEYS[1] the hash, ARGV its fields (flattened). Replaces the fields of a cached hash
    /// and keeps its remaining TTL; leaves a missing key missing. (Sent as `EVAL` inside the transaction, where a
    /// `NOSCRIPT` could not be retried.)
    static let refreshHashScript = RedisScript("""
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl == -2 then return 0 end
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], unpack(ARGV))
        if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
        return 1
        """)

    let redis: any RedisClient
    let keys: SyncKeys
    /// The writer of a Redis Cluster; `nil` for one server.
    private let clusterWriter: ClusterBatchWriter?
    /// Whether Redis is a cluster (`ClusterBatchWriter` writes the batches).
    var isCluster: Bool { clusterWriter != nil }

    /// An applier writing `keys`' collection through `redis`, one server or a `RedisCluster`.
    init(redis: any RedisClient, keys: SyncKeys) {
        self.redis = redis
        self.keys = keys
        clusterWriter = (redis as? RedisCluster).map { ClusterBatchWriter(cluster: $0, keys: keys) }
    }

    /// The one server; only called when there is no cluster writer.
    private var server: RedisConnection {
        redis as! RedisConnection
    }

    /// The stored warm-up position's text, if a warm-up is under way.
    func loadWarmupPosition() throws(RedisError) -> String? {
        try redis.command(["GET", keys.warmup]).text
    }

    /// The stored checkpoint, if any.
    func loadCheckpoint() throws(RedisError) -> Checkpoint? {
        guard let text = try redis.command(["GET", keys.resume]).text else { return nil }
        return Checkpoint(storedText: text)
    }

    /// The access counts of the cache keys `keyTexts` (their `<key>:access_count` counters) in one round trip
    /// (`MGET`, which leaves the guard of the next transaction sent ahead, and is sent behind a transaction in
    /// flight rather than after its outcome); a missing counter is 0.
    func accessCounts(of cacheKeys: [CacheKey]) throws(RedisError) -> [Int] {
        guard !cacheKeys.isEmpty else { return [] }
        let counters: [RedisReply]
        if let clusterWriter {
            counters = try clusterWriter.read(derived: CacheKey.accessCountSuffix, of: cacheKeys)
        } else {
            var mget = RedisCommandBatch()
            mget.append("MGET", cacheKeys.map(\.text), suffix: CacheKey.accessCountSuffix)
            counters = try server.readOnlyCommand(mget).array ?? []
        }
        return counters.map { counter in counter.bytes.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0 }
    }

    /// The values of `keys` (`nil` where missing) in one round trip, as `accessCounts` reads.
    func read(_ keys: [String]) throws(RedisError) -> [String?] {
        guard !keys.isEmpty else { return [] }
        let replies: [RedisReply]
        if let clusterWriter {
            replies = try clusterWriter.read(keys)
        } else {
            var mget = RedisCommandBatch()
            mget.append(["MGET"] + keys)
            replies = try server.readOnlyCommand(mget).array ?? []
        }
        return replies.map(\.text)
    }

    /// Applies `ops` (set, refresh, delete; others are ignored) and the checkpoint change atomically.
    /// Throws `FencedWriteError` when this instance no longer holds the lease, `RedisError` when Redis fails.
    func apply(_ ops: [CacheOp], checkpoint: CheckpointChange, events: Int, warmup: WarmupChange = .keep,
               fence: String?) throws {
        if let clusterWriter {
            try clusterWriter.apply(ops, checkpoint: checkpoint, events: events, warmup: warmup, fence: fence)
            return
        }
        let commands = commands(ops, checkpoint: checkpoint, events: events, warmup: warmup)
        guard commands.count > 0 else { return }
        guard let replies = try server.transaction(commands, onlyIf: condition(fence)) else { throw fenced }
        try redis.throwFirstError(in: replies)
    }

    /// A batch laid out for `send`: its transaction's commands (`commands(_:checkpoint:events:)`), or on a cluster
    /// its scripts' arguments per master (`ClusterBatchWriter.plan`). On a cluster, the TTLs of the ops at
    /// `ttlsPending` (ascending) may be left out, to be given by `withTTLs(of:_:)` before `send`; one server lays out
    /// no such batch.
    func prepare(_ ops: [CacheOp], checkpoint: CheckpointChange, events: Int, ttlsPending: [Int] = []) -> Prepared {
        if let clusterWriter {
            return .slotted(clusterWriter.plan(ops, checkpoint: checkpoint, events: events, ttlsPending: ttlsPending))
        }
        precondition(ttlsPending.isEmpty, "one server's transaction is laid out with its TTLs")
        return .transaction(commands(ops, checkpoint: checkpoint, events: events))
    }

    /// `prepared` with the TTLs it left out taken from `ops`, the ops it was prepared from with their TTLs final.
    func withTTLs(of ops: [CacheOp], _ prepared: Prepared) -> Prepared {
        guard case .slotted(let plan) = prepared else { return prepared }
        return .slotted(plan.withTTLs(of: ops))
    }

    /// `apply` of a prepared batch without waiting for Redis: returns once the transaction is written (`false` when
    /// there was nothing to write); `awaitSent()` takes its outcome. A fence that fails already throws here. On a
    /// cluster every master's script is written (`ClusterBatchWriter.send`), and a slot's fence that refuses throws
    /// from `awaitSent()`, which also writes the checkpoint.
    func send(_ prepared: Prepared, fence: String?) throws -> Bool {
        switch prepared {
        case .slotted(let plan):
            try clusterWriter!.send(plan, fence: fence)
            return true
        case .transaction(let commands):
            guard commands.count > 0 else { return false }
            guard try server.sendTransaction(commands, onlyIf: condition(fence)) else { throw fenced }
            return true
        }
    }

    /// Waits for the transaction `send` wrote and throws what `apply` would have thrown. On a cluster, with
    /// `beforeNextSend` (the caller sends the next batch at once), the checkpoint's writes go with that batch
    /// (`ClusterBatchWriter.awaitSent(carryingCheckpoint:)`).
    func awaitSent(beforeNextSend: Bool = false) throws {
        if let clusterWriter { return try clusterWriter.awaitSent(carryingCheckpoint: beforeNextSend) }
        guard try server.awaitTransaction() != nil else { throw fenced }
    }

    /// Forgets the transaction `send` wrote without waiting for its outcome (after a failure elsewhere).
    func abandonSent() {
        if let clusterWriter { return clusterWriter.abandonSent() }
        server.discardSentTransaction()
    }

    /// The transaction's commands: each op's write in order, one `UNLINK` of their read-through leases (removing
    /// a lease commutes with every write, and the transaction applies them together), then the checkpoint and
    /// the counters.
    func commands(_ ops: [CacheOp], checkpoint: CheckpointChange, events: Int, warmup: WarmupChange = .keep) -> RedisCommandBatch {
        var commands = RedisCommandBatch()
        // The values, the keys (twice: the lease key too) and, per op, room for the command names and lengths.
        var bytes = 256
        for index in ops.indices {
            switch ops[index] {
            case .set(let key, let value, _), .refresh(let key, let value): bytes += value.utf8.count + 2 * key.text.utf8.count + 96
            case .delete(let key, _): bytes += 2 * key.text.utf8.count + 64
            case .setHash(let key, let fields, _), .refreshHash(let key, let fields):
                bytes += fields.reduce(0) { $0 + $1.utf8.count + 16 } + 3 * key.text.utf8.count + 160
            case .indexSet(let key, let value, _): bytes += value.utf8.count + key.utf8.count + 64
            case .indexDelete(let key): bytes += key.utf8.count + 32
            case .skip, .flushCollection: continue
            }
        }
        commands.reserveCapacity(bytes)
        var leases = RedisArgumentList()
        for index in ops.indices {
            switch ops[index] {
            case .set(let key, let value, let ttl):
                commands.append("SET", key.text, value, "EX", ttl)
                leases.append(key.text, suffix: CacheKey.leaseSuffix)
            case .refresh(let key, let value):
                commands.append("SET", key.text, value, "XX", "KEEPTTL")
                leases.append(key.text, suffix: CacheKey.leaseSuffix)
            case .delete(let key, _):
                commands.append("UNLINK", key.text)
                leases.append(key.text, suffix: CacheKey.leaseSuffix)
            case .setHash(let key, let fields, let ttl):
                commands.append("UNLINK", key.text)
                commands.append(["HSET", key.text] + fields)
                commands.append("EXPIRE", key.text, String(ttl))
                leases.append(key.text, suffix: CacheKey.leaseSuffix)
            case .refreshHash(let key, let fields):
                commands.append(["EVAL", Self.refreshHashScript.source, "1", key.text] + fields)
                leases.append(key.text, suffix: CacheKey.leaseSuffix)
            case .indexSet(let key, let value, let ttl):
                commands.append("SET", key, value, "EX", ttl)
            case .indexDelete(let key):
                commands.append("UNLINK", key)
            case .skip, .flushCollection: continue
            }
        }
        if leases.count > 0 { commands.append("UNLINK", leases) }
        switch checkpoint {
        case .keep: break
        case .delete: commands.append("DEL", keys.resume)
        case .set(let cp): commands.append("SET", keys.resume, cp.storedText)
        }
        switch warmup {
        case .keep: break
        case .delete: commands.append("DEL", keys.warmup)
        case .set(let text): commands.append("SET", keys.warmup, text)
        }
        if events > 0 {
            commands.append("HINCRBY", keys.applied, "events", String(events))
            commands.append("HINCRBY", keys.applied, "batches", "1")
        }
        return commands
    }

    private func condition(_ fence: String?) -> (key: [UInt8], value: [UInt8])? {
        fence.map { (key: Array(keys.leader.utf8), value: Array($0.utf8)) }
    }

    private var fenced: FencedWriteError {
        FencedWriteError(leaseKey: keys.leader)
    }

    /// Deletes `keys` and their read-through leases outside a transaction: under `OOM` Redis queues nothing in a
    /// `MULTI`, but still runs `UNLINK`. Unfenced, which is safe for deletes: an ex-leader's delete makes a miss,
    /// never a stale entry.
    func deleteUnfenced(_ keys: [CacheKey]) throws {
        guard !keys.isEmpty else { return }
        var commands: [[String]] = []
        if clusterWriter != nil {
            // Keys in many slots: one UNLINK each.
            for key in keys { commands += [["UNLINK", key.text], ["UNLINK", key.leaseKey]] }
        } else {
            for start in stride(from: 0, to: keys.count, by: 500) {
            let part = keys[start..<min(start + 500, keys.count)]
                commands.append(["UNLINK"] + part.map(\.text))
                commands.append(["UNLINK"] + part.map(\.leaseKey))
            }
        }
        try redis.throwFirstError(in: try redis.pipeline(commands))
    }

    /// Removes every key matching `pattern` (SCAN + fenced UNLINK in batches of 500) but cachesync's own under
    /// `checkpoint.keyPrefix` (which a broad template such as `{id}` would match: its leases among them); returns
    /// how many.
    ///
    /// On a cluster every master is scanned, for the keys and for their derived keys (`{<key>}:lease`).
    func flush(pattern: String, fence: String?) throws -> Int {
        var removed = 0
        let cluster = clusterWriter != nil
        for glob in cluster ? [pattern, CacheKey.colocatedDerivedPattern(pattern)] : [pattern] {
            try redis.scan(match: glob) { found in
                let keys = found.filter { !$0.hasPrefix(self.keys.checkpointPrefix) }
                if !keys.isEmpty {
                    let ops = keys.map {
                        CacheOp.delete(key: CacheKey(text: $0, colocatesDerivedKeys: cluster), reason: .changed)
                    }
                    try apply(ops, checkpoint: .keep, events: 0, fence: fence)
                }
                removed += keys.count
                return true
            }
        }
        return removed
    }
}
