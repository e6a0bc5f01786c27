import Foundation
import RedisBridge

/// One instance's claim to apply a collection: a Redis key holding `<instanceId>|<epoch>`, with an expiry.
///
/// Claiming and renewing run as one Lua script; the epoch grows with every new claim. Each batch is written in a
/// `MULTI`/`EXEC` transaction under `WATCH` of this key, and only while it holds this instance's value
/// (`BatchApplier`, `RedisConnection.sendTransaction`), so a paused or partitioned ex-leader writes nothing.
final class LeaderLease {
    /// KEYS: lease, epoch. ARGV: instance id, ttl ms, the value held ('' when none), '1' when a lease under this
    /// id may be taken back. `{1, value}` when held afterwards, else `{0, the current value}`.
    private static let acquireScript = RedisScript("""
        local cur = redis.call('GET', KEYS[1])
        if cur and ARGV[3] ~= '' and cur == ARGV[3] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return {1, cur}
        end
        if (not cur) or (ARGV[4] == '1' and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. '|') then
          local epoch = redis.call('INCR', KEYS[2])
          local value = ARGV[1] .. '|' .. epoch
          redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
          return {1, value}
        end
        return {0, cur}
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
    /// The last value this instance held, kept after losing it.
    private var lastHeld: String?
    /// A value under this instance's own id that it never held, seen at the last claim: another live instance
    /// uses the same id (two pods given one `CACHESYNC_INSTANCE_ID`).
    private(set) var duplicate: String?
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
    ///
    /// An instance that never held the lease (a restart under the same id) takes a lease under its own id back at
    /// once, with a new epoch. One that held it and finds its id with an epoch it never had knows another live
    /// instance runs under the same id (`duplicate`): it does not take the lease back, but waits for it to be free,
    /// so the two stop taking it from each other.
    func acquireOrRenew(_ redis: any RedisClient) throws(RedisError) -> Bool {
        let sent = Date()
        let reply = try Self.acquireScript.run(
            on: redis, keys: [keys.leader, keys.epoch],
            arguments: [instanceId, String(Int(ttl * 1000)), held ?? "", lastHeld == nil ? "1" : "0"]).array ?? []
        let value = reply.count == 2 ? reply[1].text : nil
        if reply.first?.integer == 1, let value {
            held = value
            lastHeld = value
            renewedAt = sent
            duplicate = nil
            return true
        }
        held = nil
        duplicate = value.flatMap { $0.hasPrefix(instanceId + "|") && $0 != lastHeld ? $0 : nil }
        return false
    }

    /// Until when (Unix seconds) the lease is surely still ours: counted from before the renewal was sent.
    var validUntil: Double {
        held == nil ? 0 : renewedAt.timeIntervalSince1970 + ttl
    }

    /// Whether a claim could take the lease now (for `LeaseBalancer.mayClaim`): no instance holds it, or it is held
    /// under this instance's id (a restart reclaims it; `acquireOrRenew` decides). Also notes when another's lease
    /// runs out (`expiresIn`), so a standby polls again right then instead of up to a poll later.
    func isOpen(_ redis: any RedisClient) throws(RedisError) -> Bool {
        let replies = try redis.pipeline([["GET", keys.leader], ["PTTL", keys.leader]])
        try redis.throwFirstError(in: replies)
        guard let value = replies[0].text else {
            expiresIn = nil
            return true
        }
        expiresIn = replies[1].integer.flatMap { $0 >= 0 ? Double($0) / 1000 : nil }
        return value.hasPrefix(instanceId + "|")
    }

    /// Seconds until the lease another instance holds runs out, as `isOpen` last saw it; `nil` when it saw none.
    private(set) var expiresIn: Double?

    /// Gives the lease up (clean shutdown, or handing it over), so a standby takes over at once.
    func release(_ redis: any RedisClient) {
        guard let held else { return }
        _ = try? Self.releaseScript.run(on: redis, keys: [keys.leader], arguments: [held])
        self.held = nil
    }

    /// Forgets the lease after a fenced write: another instance holds it now.
    func lost() {
        held = nil
    }
}
