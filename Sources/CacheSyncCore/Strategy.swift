import BSONModel

/// The pure planner: what a change event does to Redis under a collection's strategy (docs/ARCHITECTURE.md §4).
public enum Strategy {
    /// The cache operations for one event, in order; `[]` for `invalidate` (the watcher reopens) and unknown types.
    ///
    /// `accessCount` is the key's current `<key>:access_count`; only the `update` strategy uses it (adaptive TTL).
    /// A document event without `documentKey._id` plans nothing (`ChangeEvent(bson:)` never produces one).
    public static func plan(event: ChangeEvent, collection: CollectionConfig, keyPrefix: String, accessCount: Int) -> [CacheOp] {
        plan(event: event, collection: collection, keys: CacheKey.Layout(collection: collection, keyPrefix: keyPrefix),
             accessCount: accessCount)
    }

    /// `plan` with the collection's key layout rendered beforehand (once per collection, not per event).
    public static func plan(event: ChangeEvent, collection: CollectionConfig, keys: CacheKey.Layout, accessCount: Int) -> [CacheOp] {
        var ops: [CacheOp] = []
        plan(event: event, collection: collection, keys: keys, accessCount: accessCount, into: &ops)
        return ops
    }

    /// `plan` appending the ops to `ops` (the applier plans a batch into one array).
    public static func plan(event: ChangeEvent, collection: CollectionConfig, keys: CacheKey.Layout, accessCount: Int,
                            into ops: inout [CacheOp]) {
        switch event.operationType {
        case .drop: return ops.append(flush(collection, keys.keyPrefix, .drop))
        case .rename: return ops.append(flush(collection, keys.keyPrefix, .rename))
        case .dropDatabase: return ops.append(flush(collection, keys.keyPrefix, .dropDatabase))
        case .invalidate, .unknown: return
        case .insert, .update, .replace, .delete: break
        }
        guard let operation = event.operationType.documentOperation, let id = event.documentID else { return }
        let key = keys.key(id: id)
        guard collection.actsOn(operation) else { return ops.append(.skip(key: key, reason: .operationNotConfigured)) }
        if operation == .delete { return ops.append(.delete(key: key, reason: .deleted)) }

        switch collection.strategy {
        case .invalidate:
            ops.append(.delete(key: key, reason: .changed))
        case .update:
            let ttl = collection.ttl.ttl(forAccesses: accessCount)
            ops.append(write(event, key, collection, json: { .set(key: key, value: $0, ttlSeconds: ttl) },
                             hash: { .setHash(key: key, fields: $0, ttlSeconds: ttl) }))
        case .preserveTTL:
            if operation == .insert {
                ops.append(write(event, key, collection, json: { .set(key: key, value: $0, ttlSeconds: collection.ttl.base) },
                                 hash: { .setHash(key: key, fields: $0, ttlSeconds: collection.ttl.base) }))
            } else {
                ops.append(write(event, key, collection, json: { .refresh(key: key, value: $0) },
                                 hash: { .refreshHash(key: key, fields: $0) }))
            }
        }
    }

    /// The write a warm-up makes of one document read from the collection (`document`, its BSON, `_id` included):
    /// what the stream plans for an insert of it, through the same `plan`, so every write a document implies comes
    /// along. Only writes (`set`, `setHash`) are kept, at most one per document: a document the snapshot leaves uncached (too large, filtered out, not valid)
    /// has no key to delete, since warm-up writes only documents the stream did not touch meanwhile.
    public static func planSnapshot(document: EncodedBSONDocument, collection: CollectionConfig, keys: CacheKey.Layout,
                                    into ops: inout [CacheOp]) {
        guard let id = document["_id"] else { return }
        let event = ChangeEvent(resumeToken: [:], operationType: .insert, documentKey: ["_id": id],
                                fullDocument: .document(document))
        let planned = ops.count
        plan(event: event, collection: collection, keys: keys, accessCount: 0, into: &ops)
        var kept = planned
        for index in planned..<ops.count {
            switch ops[index] {
            case .set, .setHash:
                ops[kept] = ops[index]
                kept += 1
            default:
                continue
            }
        }
        ops.removeLast(ops.count - kept)
    }

    /// Whether `op`, planned for `collection`, takes its TTL from the key's access count (the `update` strategy's
    /// writes), so the applier fetches counters only for these and can plan before it has them.
    public static func ttlFollowsAccessCount(_ op: CacheOp, collection: CollectionConfig) -> Bool {
        guard collection.strategy == .update else { return false }
        switch op {
        case .set, .setHash: return true
        default: return false
        }
    }

    /// `op` as `plan` makes it when the key's access count is `accessCount`: a write whose TTL follows the count
    /// gets that count's TTL; every other op is returned as it is.
    public static func withAccessCount(_ accessCount: Int, _ op: CacheOp, collection: CollectionConfig) -> CacheOp {
        guard ttlFollowsAccessCount(op, collection: collection) else { return op }
        let ttl = collection.ttl.ttl(forAccesses: accessCount)
        switch op {
        case .set(let key, let value, _): return .set(key: key, value: value, ttlSeconds: ttl)
        case .setHash(let key, let fields, _): return .setHash(key: key, fields: fields, ttlSeconds: ttl)
        default: return op
        }
    }

    /// The write `json` (or, `format: hash`, `hash`) makes of the event's document, projected, or the delete that
    /// replaces it (null, absent, too large as JSON, not valid BSON, not matching the filter).
    private static func write(_ event: ChangeEvent, _ key: CacheKey, _ collection: CollectionConfig,
                              json: (String) -> CacheOp, hash: ([String]) -> CacheOp) -> CacheOp {
        switch event.fullDocument {
        case .absent: return .delete(key: key, reason: .fullDocumentAbsent)
        case .null: return .delete(key: key, reason: .nullFullDocument)
        case .document(let encoded):
            var document = encoded
            // Filter and exclusion read the encoded bytes; an inclusion is applied to the decoded document.
            if let filter = collection.filter, !filter.matches(encoded) { return .delete(key: key, reason: .filteredOut) }
            if let projection = collection.projection {
                if let projected = projection.apply(encoded) {
                    document = projected
                } else {
                    guard let whole = try? encoded.decoded() else { return .delete(key: key, reason: .invalidDocument) }
                    document = EncodedBSONDocument(projection.apply(whole))
                }
            }
            var decoded: BSONDocument?
            if collection.format == .hash {
                guard let whole = try? document.decoded() else { return .delete(key: key, reason: .invalidDocument) }
                decoded = whole
            }
            switch ExtendedJSON.rendering(document, maxBytes: collection.maxValueBytes) {
            case .text(let text):
                if collection.format == .hash, let decoded { return hash(ValueFormat.hashFields(decoded)) }
                return json(text)
            case .tooLarge: return .delete(key: key, reason: .tooLarge)
            case .invalid: return .delete(key: key, reason: .invalidDocument)
            }
        }
    }

    private static func flush(_ collection: CollectionConfig, _ keyPrefix: String, _ reason: CacheOp.FlushReason) -> CacheOp {
        .flushCollection(namespace: collection.namespace,
                         pattern: CacheKey.collectionPattern(collection: collection, keyPrefix: keyPrefix),
                         reason: reason)
    }
}
