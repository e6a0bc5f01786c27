import Foundation
import RedisBridge

/// One instance's claim to apply a collection: a Redis key holding `<instanceId>|<epoch>`, with an expiry.
///
/// Claiming and renewing run as one Lua script; the epoch grows with every new claim. Each batch is written in a
/// `MULTI`/`EXEC` transaction under `WATCH` of this key, and only while it holds this instance's value
/// (`BatchApplier`, `RedisConnection.sendTransaction`), so a paused or partitioned ex-leader writes nothing.
final class LeaderLease {
    private static let acquireScript = RedisScript("""
        local cur = redis.call('GET', KEYS[1])
        if cur and ARGV[3] ~= '' and cur == ARGV[3] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return cur
        end
        if (not cur) or string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
          local epoch = redis.call('INCR', KEYS[2])
          local value = ARGV[1] .. '|' .. epoch
          redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
          return value
        end
        return false
        """)

    private static let releaseScript = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    private let keys: SyncKeys
    private let instanceId: String
    private let ttl: Double
    /// The value this instance holds (`<instanceId>|<epoch>`), or `nil` when it is not the leader.
    private(set) var held: String?
    private var renewedAt = Date.distantPast

    /// A lease on the collection of `keys`, held as `instanceId`, lasting `ttl` seconds.
    init(keys: SyncKeys, instanceId: String, ttl: Double) {
        self.keys = keys
        self.instanceId = instanceId
        self.ttl = ttl
    }

    /// Whether the lease should be renewed (a third of its time has passed) or claimed.
    var isDue: Bool {
        held == nil || Date().timeIntervalSince(renewedAt) >= ttl / 3
    }

    /// Claims or renews the lease; returns whether this instance holds it afterwards.
    /// An instance restarted under the same id takes its own lease back at once, with a new epoch.
    func acquireOrRenew(_ redis: RedisConnection) throws(RedisError) -> Bool {
        let sent = Date()
        let reply = try Self.acquireScript.run(on: redis, keys: [keys.leader, keys.epoch],
                                               arguments: [instanceId, String(Int(ttl * 1000)), held ?? ""])
        held = reply.text
        if held != nil { renewedAt = sent }
        return held != nil
    }

    /// Until when (Unix seconds) the lease is surely still ours: counted from before the renewal was sent.
    var validUntil: Double {
        held == nil ? 0 : renewedAt.timeIntervalSince1970 + ttl
    }

    /// Gives the lease up (clean shutdown), so a standby takes over at once.
    func release(_ redis: RedisConnection) {
        guard let held else { return }
        _ = try? Self.releaseScript.run(on: redis, keys: [keys.leader], arguments: [held])
        self.held = nil
    }

    /// Forgets the lease after a fenced write: another instance holds it now.
    func lost() {
        held = nil
    }
}
