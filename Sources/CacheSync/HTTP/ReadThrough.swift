import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge

/// The read path of `GET /v1/cache/{collection}/{id}` (docs/ARCHITECTURE.md §6): answer from Redis, or read MongoDB
/// under a lease and cache the document only while the lease is still ours. The lease key also remembers, for a
/// while, that the document does not exist or is too large to cache (every write event for the key removes it,
/// as it removes a lease), so neither costs a MongoDB read per request; accesses are counted only for documents
/// that exist.
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
        /// No such document; `remembered` when the lease key said so (no MongoDB read).
        case notFound(remembered: Bool)
        /// The document's JSON is larger than `maxValueBytes`: not cached, not served.
        case tooLarge(remembered: Bool)
    }

    /// What the lease key holds, besides a reader's token.
    enum Marker {
        static let notFound = "not-found"
        static let tooLarge = "too-large"
    }

    /// KEYS: key, access counter, lease. ARGV: window, the start of this document's JSON (`{"_id":<id>`).
    /// A cached value that is this collection's document: `{1, value, accesses}`, counted. Another value under the
    /// key (a foreign key the template happens to name): `{2}`. Nothing cached: `{0, lease value or ""}`.
    static let lookupScript = RedisScript("""
        local v = redis.call('GET', KEYS[1])
        if v then
          local n = #ARGV[2]
          local after = string.sub(v, n + 1, n + 1)
          if string.sub(v, 1, n) ~= ARGV[2] or (after ~= ',' and after ~= '}') then return {2} end
          local count = redis.call('INCR', KEYS[2])
          redis.call('EXPIRE', KEYS[2], ARGV[1])
          return {1, v, count}
        end
        return {0, redis.call('GET', KEYS[3]) or ''}
        """)

    /// `lookupScript` for `format: hash`. ARGV[2]: the `_id` field's value (relaxed Extended JSON). A hash whose
    /// `_id` is this document's: `{1, fields, accesses}`, counted; another value: `{2}`; nothing: `{0, lease}`.
    static let lookupHashScript = RedisScript("""
        local t = redis.call('TYPE', KEYS[1])['ok']
        if t == 'hash' then
          if redis.call('HGET', KEYS[1], '_id') ~= ARGV[2] then return {2} end
          local count = redis.call('INCR', KEYS[2])
          redis.call('EXPIRE', KEYS[2], ARGV[1])
          return {1, redis.call('HGETALL', KEYS[1]), count}
        end
        if t ~= 'none' then return {2} end
        return {0, redis.call('GET', KEYS[3]) or ''}
        """)

    /// `storeScript` for `format: hash`. KEYS: key, lease. ARGV: token, ttl, the fields (flattened).
    static let storeHashScript = RedisScript("""
        if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
        redis.call('DEL', KEYS[1])
        redis.call('HSET', KEYS[1], unpack(ARGV, 3))
        redis.call('EXPIRE', KEYS[1], ARGV[2])
        redis.call('DEL', KEYS[2])
        return 1
        """)

    /// KEYS: key, lease. ARGV: token, value, ttl. Stores the value only while the lease holds our token.
    static let storeScript = RedisScript("""
        if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        redis.call('DEL', KEYS[2])
        return 1
        """)

    /// KEYS: lease. ARGV: token, marker, milliseconds. Replaces our lease with a marker (or removes it when the
    /// milliseconds are 0): a write event since we took the lease removed it, and then nothing is remembered.
    static let markScript = RedisScript("""
        if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
        if ARGV[3] == '0' then return redis.call('DEL', KEYS[1]) end
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return 1
        """)

    /// KEYS: lease. ARGV: token. Removes the lease if it is still ours.
    static let releaseScript = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    let keyPrefix: String
    /// Whether the keys' derived keys share their Redis Cluster slot (the scripts use them together).
    var colocatingDerivedKeys = false
    let pool: MongoClientPool
    let telemetry: Telemetry
    let settings: Settings

    /// Reads the document `id` of `collection` through the cache, using `redis`.
    func read(_ collection: CollectionConfig, id: BSONValue, redis: any RedisClient) throws -> Outcome {
        let ns = collection.namespace
        let key = CacheKey(collection: collection, keyPrefix: keyPrefix, id: id, colocatingDerivedKeys: colocatingDerivedKeys)
        let hash = collection.format == .hash
        let lookup = try (hash ? Self.lookupHashScript : Self.lookupScript).run(
            on: redis, keys: [key.text, key.accessCountKey, key.leaseKey],
            arguments: [String(collection.accessWindow),
                        (hash ? "" : #"{"_id":"#) + ExtendedJSON.relaxed(id)]).array ?? []
        switch lookup.first?.integer {
        case 1:
            telemetry.read(ns, hit: true)
            guard lookup.count > 1 else { return .hit("") }
            if hash { return .hit(ValueFormat.json(hashFields: (lookup[1].array ?? []).map { $0.text ?? "" })) }
            return .hit(lookup[1].text ?? "")
        case 2:
            // Not a document of this collection: answered from MongoDB, and the key is left alone.
            telemetry.read(ns, hit: false)
            telemetry.readNotCached(ns, reason: "foreign_value")
            return try readUncached(collection, id: id)
        default:
            break
        }
        switch lookup.count > 1 ? lookup[1].text : nil {
        case Marker.notFound?:
            telemetry.read(ns, hit: true)
            return .notFound(remembered: true)
        case Marker.tooLarge?:
            telemetry.read(ns, hit: true)
            telemetry.readNotCached(ns, reason: "too_large")
            return .tooLarge(remembered: true)
        default:
            telemetry.read(ns, hit: false)
        }

        let token = Self.randomToken()
        let leased: Bool
        if settings.testSwitches.readLeaseDisabled {
            leased = true
        } else {
            let reply = try redis.command(["SET", key.leaseKey, token, "NX", "PX", String(settings.leaseMilliseconds)])
            leased = reply == .status("OK")
        }
        let found: (document: BSONDocument, matches: Bool)?
        do {
            found = try fetch(collection, id: id)
        } catch {
            if leased { release(key, token: token, redis: redis) }
            throw error
        }
        guard let (document, matches) = found else {
            if leased { mark(key, token: token, Marker.notFound, seconds: collection.notFoundTTL, redis: redis) }
            return .notFound(remembered: false)
        }
        guard matches else {
            // Served, never cached: the collection caches only what its filter matches.
            if leased { release(key, token: token, redis: redis) }
            telemetry.readNotCached(ns, reason: "filtered_out")
            return ExtendedJSON.relaxed(document, maxBytes: collection.maxValueBytes).map(Outcome.miss)
                ?? .tooLarge(remembered: false)
        }
        guard let json = ExtendedJSON.relaxed(document, maxBytes: collection.maxValueBytes) else {
            // Remembered as long as a cached copy would live: a write event for the document forgets it.
            if leased { mark(key, token: token, Marker.tooLarge, seconds: collection.ttl.base, redis: redis) }
            telemetry.readNotCached(ns, reason: "too_large")
            return .tooLarge(remembered: false)
        }
        guard leased else {
            telemetry.readNotCached(ns, reason: "lease_busy")
            return .miss(json)
        }
        // The document exists: only now is the access counted.
        let counted = try redis.pipeline([["INCR", key.accessCountKey],
                                          ["EXPIRE", key.accessCountKey, String(collection.accessWindow)]])
        try redis.throwFirstError(in: counted)
        if settings.testSwitches.readDelay > 0 {
            Thread.sleep(forTimeInterval: settings.testSwitches.readDelay)
        }
        let ttl = String(collection.ttl.ttl(forAccesses: Int(counted[0].integer ?? 1)))
        if settings.testSwitches.readLeaseDisabled {
            if hash {
                try redis.throwFirstError(in: try redis.pipeline([["UNLINK", key.text], ["HSET", key.text] + ValueFormat.hashFields(document),
                                                                   ["EXPIRE", key.text, ttl]]))
            } else {
                _ = try redis.command(["SET", key.text, json, "EX", ttl])
            }
        } else {
            let stored = hash
                ? try Self.storeHashScript.run(on: redis, keys: [key.text, key.leaseKey],
                                               arguments: [token, ttl] + ValueFormat.hashFields(document))
                : try Self.storeScript.run(on: redis, keys: [key.text, key.leaseKey], arguments: [token, json, ttl])
            if stored.integer != 1 {
                telemetry.readNotCached(ns, reason: "lease_lost")
            }
        }
        return .miss(json)
    }

    /// The document `id` as the collection caches it (projected by cachesync, so the value is the same bytes as the
    /// stream writes), and whether it matches the collection's filter; `nil` when there is none. An exclusion is
    /// also sent to the server (fewer bytes), as in the change stream, unless a filter may read the fields.
    private func fetch(_ collection: CollectionConfig, id: BSONValue) throws -> (document: BSONDocument, matches: Bool)? {
        let ns = MongoNamespace(database: collection.database, collection: collection.collection)
        let serverProjection = collection.filter == nil && collection.projection?.including == false
            ? collection.projection?.document : nil
        guard let document = try pool.findOne(ns, id: id, projection: serverProjection) else { return nil }
        let matches = collection.filter?.matches(document) ?? true
        return (collection.projection?.apply(document) ?? document, matches)
    }

    /// The document from MongoDB, writing nothing to Redis.
    private func readUncached(_ collection: CollectionConfig, id: BSONValue) throws -> Outcome {
        guard let document = try fetch(collection, id: id)?.document else { return .notFound(remembered: false) }
        guard let json = ExtendedJSON.relaxed(document, maxBytes: collection.maxValueBytes) else {
            return .tooLarge(remembered: false)
        }
        return .miss(json)
    }

    private func mark(_ key: CacheKey, token: String, _ marker: String, seconds: Int, redis: any RedisClient) {
        _ = try? Self.markScript.run(on: redis, keys: [key.leaseKey], arguments: [token, marker, String(seconds * 1000)])
    }

    private func release(_ key: CacheKey, token: String, redis: any RedisClient) {
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
