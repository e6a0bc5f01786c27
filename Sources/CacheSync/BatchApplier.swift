import CacheSyncCore
import Foundation
import RedisBridge

/// Writes planned cache operations and the resume checkpoint to Redis in one atomic Lua script, fenced by the
/// collection's lease, so the checkpoint never runs ahead of what was applied and an ex-leader writes nothing.
struct BatchApplier {
    /// KEYS: resume, leader, applied, then (key, leaseKey) pairs.
    /// ARGV: fence ('' = no lease), checkpoint ('' = keep, '-' = delete), events applied, then per op:
    /// `S value ttl` (SET EX), `R value` (SET XX KEEPTTL) or `D` (UNLINK). Every op also removes the key's
    /// read-through lease, so a reader that started before the change cannot store an older document.
    static let applyScript = RedisScript("""
        if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
          return redis.error_reply('FENCED this instance no longer holds the collection lease')
        end
        local a = 4
        for i = 4, #KEYS, 2 do
          local kind = ARGV[a]
          if kind == 'S' then
            redis.call('SET', KEYS[i], ARGV[a + 1], 'EX', ARGV[a + 2])
            a = a + 3
          elseif kind == 'R' then
            redis.call('SET', KEYS[i], ARGV[a + 1], 'XX', 'KEEPTTL')
            a = a + 2
          else
            redis.call('UNLINK', KEYS[i])
            a = a + 1
          end
          redis.call('UNLINK', KEYS[i + 1])
        end
        if ARGV[2] == '-' then
          redis.call('DEL', KEYS[1])
        elseif ARGV[2] ~= '' then
          redis.call('SET', KEYS[1], ARGV[2])
        end
        if tonumber(ARGV[3]) > 0 then
          redis.call('HINCRBY', KEYS[3], 'events', ARGV[3])
          redis.call('HINCRBY', KEYS[3], 'batches', 1)
        end
        return (#KEYS - 3) / 2
        """)

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
        var scriptKeys: [[UInt8]] = [keys.resume, keys.leader, keys.applied].map { Array($0.utf8) }
        var args: [[UInt8]] = [Array((fence ?? "").utf8)]
        switch checkpoint {
        case .keep: args.append([])
        case .delete: args.append(Array("-".utf8))
        case .set(let cp): args.append(Array(cp.storedText.utf8))
        }
        args.append(Array(String(events).utf8))
        for op in ops {
            switch op {
            case .set(let key, let value, let ttl):
                scriptKeys += [Array(key.text.utf8), Array(key.leaseKey.utf8)]
                args += [Array("S".utf8), Array(value.utf8), Array(String(ttl).utf8)]
            case .refresh(let key, let value):
                scriptKeys += [Array(key.text.utf8), Array(key.leaseKey.utf8)]
                args += [Array("R".utf8), Array(value.utf8)]
            case .delete(let key, _):
                scriptKeys += [Array(key.text.utf8), Array(key.leaseKey.utf8)]
                args.append(Array("D".utf8))
            case .skip, .flushCollection:
                continue
            }
        }
        _ = try Self.applyScript.run(on: redis, keys: scriptKeys, arguments: args)
    }

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
