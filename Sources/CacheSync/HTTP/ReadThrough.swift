import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge

/// The read path of `GET /v1/cache/{collection}/{id}` (docs/ARCHITECTURE.md §6): count the access, answer from Redis, or
/// read MongoDB under a lease and cache the document only while the lease is still ours.
///
/// Every call blocks (hiredis, libmongoc): run it on a `BlockingWorkers` thread.
struct ReadThrough: Sendable {
    /// Tuning knobs.
    struct Settings: Sendable {
        /// How long a reader's lease lives, in milliseconds: the longest a MongoDB read may take and still be cached.
        var leaseMilliseconds = 5000
        /// Test-only switches (debug builds only): no lease check, a pause before the cache write.
        var testSwitches = TestSwitches.current
    }

    /// What a read found.
    enum Outcome: Sendable, Equatable {
        /// The cached JSON.
        case hit(String)
        /// The document read from MongoDB, as relaxed Extended JSON.
        case miss(String)
        /// No such document.
        case notFound
    }

    /// KEYS: key, lease. ARGV: token, value, ttl. Stores the value only while the lease holds our token.
    static let storeScript = RedisScript("""
        if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        redis.call('DEL', KEYS[2])
        return 1
        """)

    /// KEYS: lease. ARGV: token. Removes the lease if it is still ours.
    static let releaseScript = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    let keyPrefix: String
    let pool: MongoClientPool
    let telemetry: Telemetry
    let settings: Settings

    /// Reads the document `id` of `collection` through the cache, using `redis`.
    func read(_ collection: CollectionConfig, id: BSONValue, redis: RedisConnection) throws -> Outcome {
        let ns = collection.namespace
        let key = CacheKey(collection: collection, keyPrefix: keyPrefix, id: id)
        let replies = try redis.pipeline([
            ["INCR", key.accessCountKey],
            ["EXPIRE", key.accessCountKey, String(collection.accessWindow)],
            ["GET", key.text],
        ])
        try redis.throwFirstError(in: replies)
        let accesses = Int(replies[0].integer ?? 1)
        if let cached = replies[2].text {
            telemetry.read(ns, hit: true)
            return .hit(cached)
        }
        telemetry.read(ns, hit: false)

        let token = Self.randomToken()
        let leased: Bool
        if settings.testSwitches.readLeaseDisabled {
            leased = true
        } else {
            let reply = try redis.command(["SET", key.leaseKey, token, "NX", "PX", String(settings.leaseMilliseconds)])
            leased = reply == .status("OK")
        }
        let document: BSONDocument?
        do {
            document = try pool.findOne(MongoNamespace(database: collection.database, collection: collection.collection), id: id)
        } catch {
            if leased { release(key, token: token, redis: redis) }
            throw error
        }
        guard let document else {
            if leased { release(key, token: token, redis: redis) }
            return .notFound
        }
        guard let json = ExtendedJSON.relaxed(document, maxBytes: collection.maxValueBytes) else {
            if leased { release(key, token: token, redis: redis) }
            telemetry.readNotCached(ns, reason: "too_large")
            return .miss(ExtendedJSON.relaxed(document))
        }
        guard leased else {
            telemetry.readNotCached(ns, reason: "lease_busy")
            return .miss(json)
        }
        if settings.testSwitches.readDelay > 0 {
            Thread.sleep(forTimeInterval: settings.testSwitches.readDelay)
        }
        let ttl = String(collection.ttl.ttl(forAccesses: accesses))
        if settings.testSwitches.readLeaseDisabled {
            _ = try redis.command(["SET", key.text, json, "EX", ttl])
        } else {
            let stored = try Self.storeScript.run(on: redis, keys: [key.text, key.leaseKey], arguments: [token, json, ttl])
            if stored.integer != 1 {
                telemetry.readNotCached(ns, reason: "lease_lost")
            }
        }
        return .miss(json)
    }

    private func release(_ key: CacheKey, token: String, redis: RedisConnection) {
        _ = try? Self.releaseScript.run(on: redis, keys: [key.leaseKey], arguments: [token])
    }

    /// 128 random bits as hex.
    private static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let text = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
    }
}
