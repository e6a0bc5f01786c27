import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge

/// `cachesync verify`: compares cached entries with MongoDB and lists stale entries and orphans.
public enum Verifier {
    /// One inconsistent cache entry.
    public struct Finding: Sendable, Equatable, CustomStringConvertible {
        /// `stale` (differs from MongoDB), `orphan` (document gone) or `unreadable` (not a cached document).
        public let kind: String
        /// `db.coll`.
        public let namespace: String
        /// The Redis key.
        public let key: String

        /// `kind namespace key`.
        public var description: String { "\(kind) \(namespace) \(key)" }
    }

    /// Runs the check and prints findings and counts; returns 0 when consistent, 1 otherwise.
    public static func run(config: CacheSyncConfig, collection: String?, sample: Int?) -> Int32 {
        let chosen = config.collections.filter {
            collection == nil || collection == $0.collection || collection == $0.namespace
        }
        guard !chosen.isEmpty else {
            FileHandle.standardError.write(Data("verify: no configured collection named \(collection ?? "")\n".utf8))
            return 2
        }
        do {
            let pool = try MongoClientPool(uri: config.mongodb.uri)
            let redis = config.redisConnection()
            var total = 0
            for coll in chosen {
                let (checked, findings) = try check(coll, config: config, pool: pool, redis: redis, sample: sample)
                findings.forEach { print($0) }
                let stale = findings.filter { $0.kind != "orphan" }.count
                print("\(coll.namespace): checked \(checked) keys, \(stale) stale, \(findings.count - stale) orphans")
                total += findings.count
            }
            return total == 0 ? 0 : 1
        } catch {
            FileHandle.standardError.write(Data("verify: \(error)\n".utf8))
            return 1
        }
    }

    /// Checks the cached keys of one collection (at most `sample`); returns how many were checked and the findings.
    public static func check(_ coll: CollectionConfig, config: CacheSyncConfig, pool: MongoClientPool,
                             redis: RedisConnection, sample: Int?) throws -> (Int, [Finding]) {
        let pattern = CacheKey.collectionPattern(collection: coll, keyPrefix: config.redis.keyPrefix)
        let namespace = MongoNamespace(database: coll.database, collection: coll.collection)
        var findings: [Finding] = []
        var checked = 0
        try redis.scan(match: pattern) { keys in
            for key in keys where !key.hasSuffix(":access_count") && !key.hasSuffix(":lease") {
                if let sample, checked >= sample { return false }
                guard let cached = try redis.command(["GET", key]).text else { continue }
                checked += 1
                guard let document = try? ExtendedJSONReader.document(cached), let id = document["_id"] else {
                    findings.append(Finding(kind: "unreadable", namespace: coll.namespace, key: key))
                    continue
                }
                guard let current = try pool.findOne(namespace, id: id) else {
                    findings.append(Finding(kind: "orphan", namespace: coll.namespace, key: key))
                    continue
                }
                if ExtendedJSON.relaxed(current) != cached {
                    findings.append(Finding(kind: "stale", namespace: coll.namespace, key: key))
                }
            }
            return true
        }
        return (checked, findings)
    }
}
