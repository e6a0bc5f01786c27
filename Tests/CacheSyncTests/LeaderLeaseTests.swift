@testable import CacheSync
import Foundation
import RedisBridge
import Testing
import TestSupport

/// `LeaderLease` against a real redis-server: who may apply a collection, and with which fencing epoch.
@Suite("LeaderLease: one instance applies a collection, each claim with a higher epoch")
struct LeaderLeaseTests {
    /// The sync keys of one collection under this server's key prefix.
    static func keys(_ server: RedisTestServer) -> SyncKeys {
        SyncKeys(checkpointPrefix: server.key("cs:"), namespace: "shop.products")
    }

    /// Runs `body` with a fresh server, a connection to it and the collection's keys.
    static func withLeaseKeys(_ body: (RedisConnection, SyncKeys) throws -> Void) throws {
        try withRedisServer { server in
            try body(try server.connect(), keys(server))
        }
    }

    /// The leader key's value, or `nil` when it does not exist.
    static func leader(_ redis: RedisConnection, _ keys: SyncKeys) throws -> String? {
        try redis.command(["GET", keys.leader]).text
    }

    @Test("a first claim stores <instance>|1 in the leader key, expiring after the lease's time, and holds it")
    func claim() throws {
        try Self.withLeaseKeys { redis, keys throws in
            let lease = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 2)
            #expect(lease.isDue, "a lease not yet held is due to be claimed")
            let before = Date().timeIntervalSince1970
            #expect(try lease.acquireOrRenew(redis))
            let after = Date().timeIntervalSince1970
            #expect(lease.held == "replica-a|1")
            #expect(try Self.leader(redis, keys) == "replica-a|1")
            #expect(try redis.command(["GET", keys.epoch]).text == "1")
            let pttl = try redis.command(["PTTL", keys.leader]).integer ?? -3
            #expect((1_500...2_000).contains(pttl), "the key expires with the lease, PTTL \(pttl) ms")
            #expect(lease.validUntil >= before + 2 && lease.validUntil <= after + 2,
                    "valid for the lease's time from before the claim was sent")
            #expect(!lease.isDue, "a lease just claimed is not due")
        }
    }

    @Test("renewing keeps the value and the epoch and pushes the expiry out again")
    func renew() throws {
        try Self.withLeaseKeys { redis, keys throws in
            let lease = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 2)
            #expect(try lease.acquireOrRenew(redis))
            _ = try redis.command(["PEXPIRE", keys.leader, "300"])
            #expect(try lease.acquireOrRenew(redis))
            #expect(lease.held == "replica-a|1")
            #expect(try Self.leader(redis, keys) == "replica-a|1")
            #expect(try redis.command(["GET", keys.epoch]).text == "1", "a renewal is not a new claim")
            let pttl = try redis.command(["PTTL", keys.leader]).integer ?? -3
            #expect(pttl > 1_500, "the renewal restored the full lease time, PTTL \(pttl) ms")
        }
    }

    @Test("a second instance is refused while the lease lives: it holds nothing and the leader key is unchanged")
    func secondInstanceRefused() throws {
        try Self.withLeaseKeys { redis, keys throws in
            let first = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 2)
            let second = LeaderLease(keys: keys, instanceId: "replica-b", ttl: 2)
            #expect(try first.acquireOrRenew(redis))
            #expect(try second.acquireOrRenew(redis) == false)
            #expect(second.held == nil)
            #expect(second.validUntil == 0)
            #expect(second.isDue, "a standby keeps trying")
            #expect(try Self.leader(redis, keys) == "replica-a|1")
            #expect(try redis.command(["GET", keys.epoch]).text == "1", "a refused claim takes no epoch")
        }
    }

    @Test("after the lease expires another instance takes over with a higher epoch; the old holder's renewal is refused")
    func takeoverAfterExpiry() throws {
        try Self.withLeaseKeys { redis, keys throws in
            let first = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 0.2)
            let second = LeaderLease(keys: keys, instanceId: "replica-b", ttl: 2)
            #expect(try first.acquireOrRenew(redis))
            #expect(try second.acquireOrRenew(redis) == false)
            #expect(waitUntil(timeout: .seconds(5)) { (try? redis.command(["EXISTS", keys.leader]).integer) == 0 },
                    "the 200 ms lease expired")
            #expect(try second.acquireOrRenew(redis))
            #expect(second.held == "replica-b|2")
            #expect(try first.acquireOrRenew(redis) == false, "the paused ex-leader cannot renew")
            #expect(first.held == nil)
            #expect(try Self.leader(redis, keys) == "replica-b|2")
        }
    }

    @Test("an instance restarted under the same id takes its own lease back at once, with a new epoch")
    func sameInstanceReclaims() throws {
        try Self.withLeaseKeys { redis, keys throws in
            let before = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 2)
            #expect(try before.acquireOrRenew(redis))
            let restarted = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 2)
            #expect(try restarted.acquireOrRenew(redis))
            #expect(restarted.held == "replica-a|2", "a new epoch fences the writes of the process before the restart")
            #expect(try Self.leader(redis, keys) == "replica-a|2")
            // An id that only starts with the holder's id is another instance.
            let lookalike = LeaderLease(keys: keys, instanceId: "replica", ttl: 2)
            #expect(try lookalike.acquireOrRenew(redis) == false)
        }
    }

    @Test("release deletes the leader key while it holds this instance's value, so a standby claims at once")
    func release() throws {
        try Self.withLeaseKeys { redis, keys throws in
            let first = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 2)
            let second = LeaderLease(keys: keys, instanceId: "replica-b", ttl: 2)
            #expect(try first.acquireOrRenew(redis))
            first.release(redis)
            #expect(first.held == nil)
            #expect(try redis.command(["EXISTS", keys.leader]).integer == 0)
            #expect(try second.acquireOrRenew(redis))
            #expect(second.held == "replica-b|2")
        }
    }

    @Test("a release after the lease passed to another instance leaves the new leader's key alone")
    func staleReleaseKeepsNewLeader() throws {
        try Self.withLeaseKeys { redis, keys throws in
            let first = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 0.2)
            let second = LeaderLease(keys: keys, instanceId: "replica-b", ttl: 2)
            #expect(try first.acquireOrRenew(redis))
            #expect(waitUntil(timeout: .seconds(5)) { (try? redis.command(["EXISTS", keys.leader]).integer) == 0 })
            #expect(try second.acquireOrRenew(redis))
            #expect(first.held == "replica-a|1", "the ex-leader has not noticed yet")
            first.release(redis)
            #expect(try Self.leader(redis, keys) == "replica-b|2")
            #expect(first.held == nil)
        }
    }

    @Test("a held lease is due for renewal once a third of its time has passed; a lost one at once")
    func dueAndLost() throws {
        try Self.withLeaseKeys { redis, keys throws in
            let lease = LeaderLease(keys: keys, instanceId: "replica-a", ttl: 0.6)
            #expect(try lease.acquireOrRenew(redis))
            #expect(!lease.isDue)
            Thread.sleep(forTimeInterval: 0.25)
            #expect(lease.isDue, "0.25 s is more than a third of 0.6 s")
            #expect(try lease.acquireOrRenew(redis))
            #expect(!lease.isDue, "renewed")
            lease.lost()
            #expect(lease.held == nil)
            #expect(lease.isDue)
            #expect(lease.validUntil == 0)
        }
    }
}
