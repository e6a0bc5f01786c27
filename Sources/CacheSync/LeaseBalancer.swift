import Foundation
import RedisBridge

/// Spreads the collections' leases over the live replicas: each instance heartbeats into one sorted set in Redis
/// (`<checkpoint.keyPrefix>members`, scored by Redis's own clock) and counts the instances seen within 60% of the
/// lease time (three heartbeats), N: a lost instance stops counting before its leases run out, so the others take
/// them as soon as they do; with M collections its share is ceil(M/N). Below its share it claims a free lease at once; at or above
/// it, only a lease it saw free on two polls in a row (so no collection stays unled while the others are full); above
/// its share it hands one lease over per poll (a clean release, which a replica below its share takes at its next
/// poll). No coordinator: Redis is the only shared state. Shared by the watchers of one process; thread-safe.
final class LeaseBalancer: @unchecked Sendable {
    /// KEYS: the members set. ARGV: instance id, how long an instance counts after its last heartbeat, in ms.
    /// Records this instance now (Redis's clock), drops instances not seen within that time, returns how many remain.
    private static let heartbeatScript = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZADD', KEYS[1], now, ARGV[1])
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
        redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 20)
        return redis.call('ZCARD', KEYS[1])
        """)

    private let membersKey: String
    private let instanceId: String
    private let ttl: Double
    private var collections: Int
    private let lock = NSLock()
    private var members = 1
    private var lastHeartbeat = Date.distantPast
    private var led: Set<String> = []
    /// Namespaces whose lease was seen free at the last poll.
    private var seenFree: Set<String> = []
    private var lastRelease = Date.distantPast

    /// A balancer for `collections` collections under `checkpointPrefix`, leases of `ttl` seconds.
    init(checkpointPrefix: String, instanceId: String, ttl: Double, collections: Int) {
        membersKey = checkpointPrefix + "members"
        self.instanceId = instanceId
        self.ttl = ttl
        self.collections = collections
    }

    /// This instance's share: ceil(M/N).
    var share: Int {
        lock.withLock { (collections + members - 1) / max(1, members) }
    }

    /// Follows a reload: `count` collections are configured now, and `removed` are no longer led here.
    func reconfigure(collections count: Int, removed: [String]) {
        lock.withLock {
            collections = count
            for ns in removed {
                led.remove(ns)
                seenFree.remove(ns)
            }
        }
    }

    /// How many live instances the last heartbeat counted.
    var liveInstances: Int { lock.withLock { members } }

    /// Heartbeats when a fifth of the lease time has passed since the last one.
    func heartbeatIfDue(_ redis: any RedisClient) throws(RedisError) {
        guard lock.withLock({ Date().timeIntervalSince(lastHeartbeat) >= ttl / 5 }) else { return }
        let count = try Self.heartbeatScript.run(on: redis, keys: [membersKey],
                                                 arguments: [instanceId, String(Int(ttl * 600))]).integer ?? 1
        lock.withLock {
            members = max(1, Int(count))
            lastHeartbeat = Date()
        }
    }

    /// Whether a standby watcher of `namespace`, whose lease is `free` or held by another, should try to claim it.
    func mayClaim(_ namespace: String, free: Bool) -> Bool {
        lock.withLock {
            defer { if free { seenFree.insert(namespace) } else { seenFree.remove(namespace) } }
            guard free else { return false }
            let share = (collections + members - 1) / max(1, members)
            return led.count < share || seenFree.contains(namespace)
        }
    }

    /// Records whether this instance leads `namespace` now.
    func noteLeads(_ namespace: String, _ leads: Bool) {
        lock.withLock {
            if leads { led.insert(namespace) } else { led.remove(namespace) }
            seenFree.remove(namespace)
        }
    }

    /// Whether the leader of `namespace` should hand it over now: this instance leads more than its share, and has
    /// not handed one over within the last poll (one at a time, so the others can take them).
    func shouldHandOver(_ namespace: String, poll: Double) -> Bool {
        lock.withLock {
            let share = (collections + members - 1) / max(1, members)
            guard led.contains(namespace), led.count > share, Date().timeIntervalSince(lastRelease) >= poll else {
                return false
            }
            lastRelease = Date()
            led.remove(namespace)
            return true
        }
    }
}
