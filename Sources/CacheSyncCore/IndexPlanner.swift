import BSONModel

/// Plans a batch's secondary-key writes (a collection's `indexes`, docs/ARCHITECTURE.md §4) in three steps around two
/// reads the applier makes: which per-document records to read, which old keys to read, then the ops.
///
/// A document's old secondary keys come from its change event's pre-image (`fullDocumentBeforeChange`) when the
/// collection has `preImages: true`, else from its record (`<key>:indexes`, the keys it was last given, NUL-separated,
/// written in the same atomic step as them and with their TTL). An old key the document no longer has is deleted only
/// while it still names this document (two documents may claim one key: the later write wins, and the loser must not
/// delete the winner's key). Every op sets or deletes a key outright, so a batch applied again converges.
public struct IndexPlanner {
    /// One document event of the batch, as the primary write planned it.
    public struct Change: Sendable {
        /// The document's primary key.
        public var primary: CacheKey
        /// The document's `_id` as key text (`DocumentID.keyText`): how a `value: document` copy is known to be
        /// this document's (equal ids of other numeric types give the same text).
        public var idKeyText: String
        /// The keys and values the document has now, in index order; empty when it is not cached any more (deleted,
        /// filtered out, too large).
        public var entries: [(key: String, value: String)]
        /// The keys the pre-image gives (`preImages: true`); `nil` reads the record.
        public var before: [String]?
        /// The TTL of the secondary keys and the record.
        public var ttlSeconds: Int

        public init(primary: CacheKey, idKeyText: String, entries: [(key: String, value: String)], before: [String]?,
                    ttlSeconds: Int) {
            self.primary = primary
            self.idKeyText = idKeyText
            self.entries = entries
            self.before = before
            self.ttlSeconds = ttlSeconds
        }
    }

    /// The record key of a primary key: `<key>:indexes` (in its cluster slot when derived keys are colocated).
    public static func recordKey(_ primary: CacheKey) -> String { primary.derivedKey(recordSuffix) }

    /// What `recordKey` adds to the key.
    public static let recordSuffix = ":indexes"

    /// The record's text for a document's keys.
    public static func recordText(_ keys: [String]) -> String { keys.joined(separator: "\0") }

    /// The keys a record's text lists.
    public static func keys(ofRecord text: String?) -> [String] {
        guard let text, !text.isEmpty else { return [] }
        return text.split(separator: "\0").map(String.init)
    }

    /// The secondary keys and values of `document` (the whole document, encoded), and why an index gave none (one reason per index without a key).
    public static func entries(of document: EncodedBSONDocument, id: BSONValue, value cached: String, primary: CacheKey,
                               collection: CollectionConfig, keyPrefix: String) -> (entries: [(key: String, value: String)], skipped: [SecondaryIndex.Skip]) {
        var entries: [(key: String, value: String)] = []
        var skipped: [SecondaryIndex.Skip] = []
        for index in collection.indexes {
            switch index.key(field: { document[$0] }, id: id, keyPrefix: keyPrefix, database: collection.database,
                             collection: collection.collection) {
            case .success(let key):
                if !entries.contains(where: { $0.key == key }) {
                    entries.append((key, index.value == .key ? primary.text : cached))
                }
            case .failure(let skip): skipped.append(skip)
            }
        }
        return (entries, skipped)
    }

    /// What `change(for:…)` found: the change (`nil` when the op touches no key), the indexes that gave the document
    /// no key, and whether an update or delete came without the pre-image `preImages` needs.
    public struct Planned {
        public var change: Change?
        public var skipped: [SecondaryIndex.Skip] = []
        public var preImageMissing = false
    }

    /// The secondary keys' part of a document event whose primary op (as `Strategy.plan` made it) is `primary`: the
    /// keys and values the document has now (none when it is not cached any more) and, with `preImages`, those its
    /// pre-image gives. Its TTL is set once the primary op's is final (`ttl(following:)`).
    public static func change(for event: ChangeEvent, preImage: BSONDocument?, primary op: CacheOp,
                              collection: CollectionConfig, keyPrefix: String) -> Planned {
        guard let id = event.documentID else { return Planned() }
        var planned = Planned()
        var entries: [(key: String, value: String)] = []
        let primary: CacheKey
        switch op {
        case .set(let key, _, _), .refresh(let key, _), .setHash(let key, _, _), .refreshHash(let key, _):
            primary = key
            // A hash's JSON is assembled only for `value: document` copies.
            let copies = collection.indexes.contains { $0.value == .document }
            let value = switch op {
            case .setHash(_, let fields, _), .refreshHash(_, let fields): copies ? ValueFormat.json(hashFields: fields) : ""
            case .set(_, let value, _), .refresh(_, let value): value
            default: ""
            }
            if case .document(let document) = event.fullDocument {
                let found = Self.entries(of: document, id: id, value: value, primary: key, collection: collection,
                                    keyPrefix: keyPrefix)
                entries = found.entries
                planned.skipped = found.skipped
            }
        case .delete(let key, _):
            primary = key
        default:
            return planned
        }
        var before: [String]?
        if collection.preImages {
            if let preImage {
                before = keys(ofPreImage: preImage, id: id, collection: collection, keyPrefix: keyPrefix)
            } else {
                before = []
                planned.preImageMissing = event.operationType != .insert
            }
        }
        planned.change = Change(primary: primary, idKeyText: DocumentID.keyText(id), entries: entries, before: before,
                                ttlSeconds: 0)
        return planned
    }

    /// The TTL of the secondary keys of a document whose primary op is `op` (its TTL final): the write's TTL, else
    /// the base TTL (a refresh keeps the primary key's TTL, which cachesync does not read).
    public static func ttl(following op: CacheOp, collection: CollectionConfig) -> Int {
        switch op {
        case .set(_, _, let ttl), .setHash(_, _, let ttl): ttl
        default: collection.ttl.base
        }
    }

    /// The keys a document had per its pre-image (as `entries` gives them).
    public static func keys(ofPreImage document: BSONDocument, id: BSONValue, collection: CollectionConfig,
                            keyPrefix: String) -> [String] {
        var keys: [String] = []
        for index in collection.indexes {
            if case .success(let key) = index.key(of: document, id: id, keyPrefix: keyPrefix,
                                                  database: collection.database, collection: collection.collection),
               !keys.contains(key) {
                keys.append(key)
            }
        }
        return keys
    }

    public let changes: [Change]
    /// Whether records are kept (no pre-images).
    public let keepsRecords: Bool
    /// Whether a record also names the keys its change deleted (on a Redis Cluster, where a batch's writes are not
    /// one transaction): when a batch lands in part, its record written but a deletion lost (on a master that
    /// failed), its replay deletes them again instead of finding them gone from the record.
    public let recordsNameDropped: Bool
    /// Step 1: the record keys to read (each once), for the changes without a pre-image.
    public let recordsToRead: [String]

    public init(changes: [Change], keepsRecords: Bool, recordsNameDropped: Bool = false) {
        self.changes = changes
        self.keepsRecords = keepsRecords
        self.recordsNameDropped = recordsNameDropped
        var seen = Set<String>()
        recordsToRead = keepsRecords ? changes.compactMap { change in
            guard change.before == nil else { return nil }
            let key = Self.recordKey(change.primary)
            return seen.insert(key).inserted ? key : nil
        } : []
    }

    /// Step 2: given the records' texts (in `recordsToRead` order), the old keys to read: those some change drops.
    public func oldKeysToRead(records: [String?]) -> [String] {
        var current = Dictionary(uniqueKeysWithValues: zip(recordsToRead, records.map(Self.keys(ofRecord:))))
        var seen = Set<String>()
        var result: [String] = []
        for change in changes {
            let record = Self.recordKey(change.primary)
            let old = change.before ?? current[record] ?? []
            for key in old where !change.entries.contains(where: { $0.key == key }) && seen.insert(key).inserted {
                result.append(key)
            }
            if keepsRecords { current[record] = change.entries.map(\.key) }
        }
        return result
    }

    /// Step 3: the ops, in change order, given the records and the old keys' values (in the orders asked). Each old
    /// key a change drops is deleted when it still names that document (by the batch's earlier writes, else by the
    /// value read); each entry is written; the record follows the entries (and the keys deleted, with
    /// `recordsNameDropped`).
    public func ops(records: [String?], oldKeys: [String], oldValues: [String?]) -> [CacheOp] {
        var current = Dictionary(uniqueKeysWithValues: zip(recordsToRead, records.map(Self.keys(ofRecord:))))
        // The owner (primary key) of each secondary key the batch wrote or deleted so far; nil: deleted.
        var written: [String: String?] = [:]
        let read = Dictionary(zip(oldKeys, oldValues), uniquingKeysWith: { first, _ in first })
        var ops: [CacheOp] = []
        for change in changes {
            let record = Self.recordKey(change.primary)
            let old = change.before ?? current[record] ?? []
            var dropped: [String] = []
            for key in old where !change.entries.contains(where: { $0.key == key }) {
                let owned: Bool
                if let owner = written[key] {
                    owned = owner == change.primary.text
                } else if let value = read[key] ?? nil {
                    owned = value == change.primary.text || Self.isCopy(value, of: change.idKeyText)
                } else {
                    owned = false  // already gone
                }
                if owned {
                    ops.append(.indexDelete(key: key))
                    written[key] = .some(nil)
                    if recordsNameDropped { dropped.append(key) }
                }
            }
            for entry in change.entries {
                ops.append(.indexSet(key: entry.key, value: entry.value, ttlSeconds: change.ttlSeconds))
                written[entry.key] = .some(change.primary.text)
            }
            if keepsRecords {
                let keys = change.entries.map(\.key) + dropped
                if keys.isEmpty {
                    ops.append(.indexDelete(key: record))
                } else {
                    ops.append(.indexSet(key: record, value: Self.recordText(keys), ttlSeconds: change.ttlSeconds))
                }
                current[record] = keys
            }
        }
        return ops
    }

    /// Whether `value` is a cached copy of the document whose `_id` has the key text `idKeyText`.
    static func isCopy(_ value: String, of idKeyText: String) -> Bool {
        guard value.hasPrefix(#"{"_id":"#), let id = (try? ExtendedJSONReader.document(value))?["_id"] else { return false }
        return DocumentID.keyText(id) == idKeyText
    }
}
