import CacheSyncCore
import Foundation
import RedisBridge

/// Writes planned cache operations and the resume checkpoint to Redis in one `MULTI`/`EXEC` transaction, fenced
/// by the collection's lease (`WATCH` on the lease key, whose value must be this instance's), so the checkpoint
/// never runs ahead of what was applied and an ex-leader writes nothing.
///
/// Every op also removes the key's read-through lease (`<key>:lease`), so a reader that started before the
/// change cannot store an older document.
struct BatchApplier {
    /// What the checkpoint becomes with a write.
    enum CheckpointChange {
        case keep
        case set(Checkpoint)
        case delete
    }

    let redis: RedisConnection
    let keys: SyncKeys

    /// The stored checkpoint, if any.
    func loadCheckpoint() throws(RedisError) -> Checkpoint? {
        guard let text = try redis.command(["GET", keys.resume]).text else { return nil }
        return Checkpoint(storedText: text)
    }

    /// The access counts of `keys` in one round trip (`MGET`); a missing counter is 0.
    func accessCounts(_ countKeys: [String]) throws(RedisError) -> [Int] {
        guard !countKeys.isEmpty else { return [] }
        let reply = try redis.command(["MGET"] + countKeys)
        return (reply.array ?? []).map { Int($0.text ?? "") ?? 0 }
    }

    /// Applies `ops` (set, refresh, delete; others are ignored) and the checkpoint change atomically.
    /// Throws `RedisError` with server code `FENCED` when this instance no longer holds the lease.
    func apply(_ ops: [CacheOp], checkpoint: CheckpointChange, events: Int, fence: String?) throws(RedisError) {
        var commands: [[[UInt8]]] = []
        commands.reserveCapacity(2 * ops.count + 3)
        for op in ops {
            switch op {
            case .set(let key, let value, let ttl):
                commands.append([Self.set, Array(key.text.utf8), Array(value.utf8), Self.ex, Array(String(ttl).utf8)])
            case .refresh(let key, let value):
                commands.append([Self.set, Array(key.text.utf8), Array(value.utf8), Self.xx, Self.keepTTL])
            case .delete(let key, _):
                commands.append([Self.unlink, Array(key.text.utf8)])
            case .skip, .flushCollection:
                continue
            }
            commands.append([Self.unlink, Array(op.key!.leaseKey.utf8)])
        }
        switch checkpoint {
        case .keep: break
        case .delete: commands.append([Array("DEL".utf8), Array(keys.resume.utf8)])
        case .set(let cp): commands.append([Self.set, Array(keys.resume.utf8), Array(cp.storedText.utf8)])
        }
        if events > 0 {
            commands.append([Array("HINCRBY".utf8), Array(keys.applied.utf8), Array("events".utf8), Array(String(events).utf8)])
            commands.append([Array("HINCRBY".utf8), Array(keys.applied.utf8), Array("batches".utf8), Array("1".utf8)])
        }
        guard !commands.isEmpty else { return }
        let condition = fence.map { (key: Array(keys.leader.utf8), value: Array($0.utf8)) }
        guard let replies = try redis.transaction(commands, onlyIf: condition) else {
            throw RedisError(kind: .server, endpoint: redis.options.endpoint,
                             message: "FENCED this instance no longer holds the collection lease")
        }
        for case .error(let text) in replies {
            throw RedisError(kind: .server, endpoint: redis.options.endpoint, message: text)
        }
    }

    private static let set = Array("SET".utf8), ex = Array("EX".utf8), xx = Array("XX".utf8)
    private static let keepTTL = Array("KEEPTTL".utf8), unlink = Array("UNLINK".utf8)

    /// Removes every key matching `pattern` (SCAN + fenced UNLINK in batches of 500); returns how many.
    func flush(pattern: String, fence: String?) throws -> Int {
        var removed = 0
        try redis.scan(match: pattern) { keys in
            try apply(keys.map { CacheOp.delete(key: CacheKey(text: $0), reason: .changed) }, checkpoint: .keep, events: 0, fence: fence)
            removed += keys.count
            return true
        }
        return removed
    }
}
