import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge

/// `cachesync verify`: compares cached entries with MongoDB and lists stale entries and orphans.
public enum Verifier {
    /// One inconsistent cache entry.
    public struct Finding: Sendable, Equatable, CustomStringConvertible {
        /// `stale` (differs from MongoDB), `orphan` (document gone), `unreadable` (not a cached document),
        /// `filtered` (cached although the filter leaves it out) or, for a secondary key, `conflict` (several
        /// documents claim it).
        public let kind: String
        /// `db.coll`.
        public let namespace: String
        /// The Redis key.
        public let key: String

        /// `kind namespace key`.
        public var description: String { "\(kind) \(namespace) \(key)" }
    }

    /// What was found in one collection.
    public struct CollectionReport: Sendable {
        /// `db.coll`.
        public let namespace: String
        /// How many cached documents were compared.
        public let checked: Int
        /// The inconsistent ones.
        public let findings: [Finding]

        /// Findings that are not orphans (stale or unreadable).
        public var staleCount: Int { findings.filter { $0.kind != "orphan" }.count }
    }

    /// `--collection` names no configured collection.
    public struct UnknownCollection: Error, CustomStringConvertible {
        /// The name given.
        public let name: String

        public var description: String { "no configured collection named \(name)" }
    }

    /// Checks the configured collections (only `collection`, by its name or `db.coll`, when given), at most `sample`
    /// keys each; throws `UnknownCollection`, or the MongoDB or Redis error that stopped it.
    public static func run(config: CacheSyncConfig, collection: String?, sample: Int?) throws -> [CollectionReport] {
        let chosen = config.collections.filter {
            collection == nil || collection == $0.collection || collection == $0.namespace
        }
        guard !chosen.isEmpty else { throw UnknownCollection(name: collection ?? "") }
        let pool = try MongoClientPool(uri: config.mongodb.uri)
        let redis = config.redisConnection()
        return try chosen.map { coll in
            let (checked, findings) = try check(coll, config: config, pool: pool, redis: redis, sample: sample)
            return CollectionReport(namespace: coll.namespace, checked: checked, findings: findings)
        }
    }

    /// Checks the cached keys of one collection (at most `sample`); returns how many were checked and the findings.
    public static func check(_ coll: CollectionConfig, config: CacheSyncConfig, pool: MongoClientPool,
                             redis: any RedisClient, sample: Int?) throws -> (Int, [Finding]) {
        let pattern = CacheKey.collectionPattern(collection: coll, keyPrefix: config.redis.keyPrefix)
        let namespace = MongoNamespace(database: coll.database, collection: coll.collection)
        var findings: [Finding] = []
        var checked = 0
        try redis.scan(match: pattern) { keys in
            for key in keys where !key.hasSuffix(CacheKey.accessCountSuffix) && !key.hasSuffix(CacheKey.leaseSuffix)
                && !key.hasSuffix(IndexPlanner.recordSuffix) {
                if let sample, checked >= sample { return false }
                let cached: String
                var fields: [String: String]?
                if coll.format == .hash {
                    let reply = try redis.command(["HGETALL", key])
                    guard let flat = reply.array?.map({ $0.text ?? "" }), !flat.isEmpty else {
                        if case .error = reply {
                            checked += 1
                            findings.append(Finding(kind: "unreadable", namespace: coll.namespace, key: key))
                        }
                        continue
                    }
                    fields = Self.fieldMap(flat)
                    cached = ValueFormat.json(hashFields: flat)
                } else {
                    guard let text = try redis.command(["GET", key]).text else { continue }
                    cached = text
                }
                checked += 1
                guard let document = try? ExtendedJSONReader.document(cached), let id = document["_id"] else {
                    findings.append(Finding(kind: "unreadable", namespace: coll.namespace, key: key))
                    continue
                }
                guard let current = try pool.findOne(namespace, id: id) else {
                    findings.append(Finding(kind: "orphan", namespace: coll.namespace, key: key))
                    continue
                }
                if let filter = coll.filter, !filter.matches(current) {
                    // Cached although the collection's filter leaves it out now.
                    findings.append(Finding(kind: "filtered", namespace: coll.namespace, key: key))
                    continue
                }
                let expected = coll.projection?.apply(current) ?? current
                let same = if let fields { Self.fieldMap(ValueFormat.hashFields(expected)) == fields }
                    else { ExtendedJSON.relaxed(expected) == cached }
                if !same {
                    findings.append(Finding(kind: "stale", namespace: coll.namespace, key: key))
                }
            }
            return true
        }
        for index in coll.indexes {
            let pattern = index.pattern(keyPrefix: config.redis.keyPrefix, database: coll.database, collection: coll.collection)
            try redis.scan(match: pattern) { keys in
                for key in keys {
                    if let sample, checked >= sample { return false }
                    guard let value = try redis.command(["GET", key]).text else { continue }
                    checked += 1
                    if let kind = try checkSecondary(key, value: value, index: index, coll, config: config, pool: pool) {
                        findings.append(Finding(kind: kind, namespace: coll.namespace, key: key))
                    }
                }
                return true
            }
        }
        return (checked, findings)
    }

    /// A hash's flattened fields as a map (a hash's field order is not kept by Redis).
    private static func fieldMap(_ flat: [String]) -> [String: String] {
        var map: [String: String] = [:]
        var index = 0
        while index + 1 < flat.count {
            map[flat[index]] = flat[index + 1]
            index += 2
        }
        return map
    }

    /// What is wrong with the secondary key `key` of `index` holding `value`, if anything: `unreadable` (names no
    /// document), `orphan` (its document is gone), `stale` (its document no longer gives this key, or the copy
    /// differs), `conflict` (another document gives the same key; checked for templates with one placeholder).
    private static func checkSecondary(_ key: String, value: String, index: SecondaryIndex, _ coll: CollectionConfig,
                                       config: CacheSyncConfig, pool: MongoClientPool) throws -> String? {
        let namespace = MongoNamespace(database: coll.database, collection: coll.collection)
        let layout = config.keyLayout(coll)
        let id: BSONValue?
        switch index.value {
        case .key: id = layout.idText(of: value).flatMap { try? DocumentID.parse($0, idType: coll.idType) }
        case .document: id = (try? ExtendedJSONReader.document(value))?["_id"]
        }
        guard let id else { return "unreadable" }
        guard let current = try pool.findOne(namespace, id: id) else { return "orphan" }
        let keyPrefix = config.redis.keyPrefix
        guard case .success(key) = index.key(of: current, id: id, keyPrefix: keyPrefix, database: coll.database,
                                            collection: coll.collection),
              coll.filter?.matches(current) ?? true else { return "stale" }
        if index.value == .document, ExtendedJSON.relaxed(coll.projection?.apply(current) ?? current) != value {
            return "stale"
        }
        if let (path, text) = index.soleFieldText(of: key, keyPrefix: keyPrefix, database: coll.database,
                                                   collection: coll.collection) {
            var candidates: [BSONValue] = [.string(text)]
            if let number = Int64(text) { candidates += [.int32(Int32(truncatingIfNeeded: number)), .int64(number)] }
            let claimants = try pool.find(namespace, filter: [path.joined(separator: "."): .document(["$in": .array(candidates)])],
                                          limit: 2, projection: ["_id": .int32(1)])
            if claimants.count > 1 { return "conflict" }
        }
        return nil
    }
}
