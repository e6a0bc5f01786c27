/// One thing the applier does in Redis for a change event; the output of `Strategy.plan`.
///
/// With every `set`, `refresh` and `delete` the applier also deletes `<key>:lease` (`CacheKey.leaseKey`) in the
/// same atomic step, so a read-through miss that started before the change cannot store an older document.
/// A preserve-ttl insert needs no case of its own: it is a `set` whose TTL is the base TTL.
public enum CacheOp: Sendable, Equatable {
    /// `SET key value EX ttlSeconds`: write the document with a TTL (update strategy, preserve-ttl insert).
    case set(key: CacheKey, value: String, ttlSeconds: Int)
    /// `SET key value XX KEEPTTL`: replace a cached document only if cached, keeping its remaining TTL.
    case refresh(key: CacheKey, value: String)
    /// `format: hash`: replace the hash with these fields (flattened name, value, …) and set its TTL
    /// (`UNLINK`, `HSET`, `EXPIRE`): the hash form of `set`.
    case setHash(key: CacheKey, fields: [String], ttlSeconds: Int)
    /// `format: hash`: replace a cached hash's fields, keeping its remaining TTL, only if it is cached (one script):
    /// the hash form of `refresh`.
    case refreshHash(key: CacheKey, fields: [String])
    /// `DEL key` (or `UNLINK`).
    case delete(key: CacheKey, reason: DeleteReason)
    /// Nothing in Redis: the collection's `operations` do not include this event's operation (counted as skip).
    case skip(key: CacheKey, reason: SkipReason)
    /// `SET key value EX ttlSeconds` of a secondary key, or of a document's record of its secondary keys
    /// (`indexes`, planned by `IndexPlanner`); no read-through lease goes with it.
    case indexSet(key: String, value: String, ttlSeconds: Int)
    /// `UNLINK key` of a secondary key or a record.
    case indexDelete(key: String)
    /// Remove every key of the collection: `SCAN MATCH pattern` + `UNLINK` in batches; the stream
    /// continues (the server's `invalidate` that follows reopens it).
    case flushCollection(namespace: String, pattern: String, reason: FlushReason)

    /// Why a key is deleted.
    public enum DeleteReason: String, Sendable, Equatable, CaseIterable {
        /// Invalidate strategy: the document changed.
        case changed
        /// The document was deleted.
        case deleted
        /// `fullDocument` was null: updateLookup found no document (deleted since).
        case nullFullDocument
        /// The event carried no `fullDocument` although the strategy writes documents.
        case fullDocumentAbsent
        /// The document's JSON is larger than `maxValueBytes`.
        case tooLarge
        /// `fullDocument` is not a valid BSON document (found as it is written as JSON): the key is deleted, not
        /// left stale.
        case invalidDocument
        /// The document does not match the collection's `filter` (any more): it is not cached.
        case filteredOut
    }

    /// Why an event leaves Redis alone.
    public enum SkipReason: String, Sendable, Equatable, CaseIterable {
        /// The operation is not in the collection's `operations`.
        case operationNotConfigured
    }

    /// Why a whole collection is flushed.
    public enum FlushReason: String, Sendable, Equatable, CaseIterable {
        /// The collection was dropped.
        case drop
        /// The collection was renamed.
        case rename
        /// Its database was dropped.
        case dropDatabase
    }

    /// The document key the op is about; `nil` for a flush.
    public var key: CacheKey? {
        switch self {
        case .set(let key, _, _), .refresh(let key, _), .delete(let key, _), .skip(let key, _),
             .setHash(let key, _, _), .refreshHash(let key, _): key
        case .flushCollection, .indexSet, .indexDelete: nil
        }
    }

    /// The `action` label of `cachesync_cache_writes_total`: `set`, `delete` or `skip` (`flush` for a flush).
    public var metricAction: String {
        switch self {
        case .set, .refresh, .setHash, .refreshHash: "set"
        case .delete: "delete"
        case .skip: "skip"
        case .flushCollection: "flush"
        case .indexSet: "index_set"
        case .indexDelete: "index_delete"
        }
    }
}
