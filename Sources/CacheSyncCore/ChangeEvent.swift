import BSONModel

/// One MongoDB change event, decoded from the real server format (docs/ARCHITECTURE.md §8).
public struct ChangeEvent: Sendable, Equatable {
    /// The resume token (`_id`, usually `{_data: "<hex>"}`) as its BSON bytes: applying a batch reads only the
    /// last event's, so the others are never decoded.
    public var encodedResumeToken: EncodedBSONDocument {
        get { storage.document(storage.token) }
        set { update { $0.token = $0.keep(newValue) } }
    }
    /// What happened.
    public var operationType: OperationType {
        get { storage.operationType }
        set { update { $0.operationType = newValue } }
    }
    /// When it happened in the cluster, if the event says.
    public var clusterTime: ClusterTime? {
        get { storage.clusterTime }
        set { update { $0.clusterTime = newValue } }
    }
    /// Wall-clock time of the change in milliseconds since the epoch (MongoDB 6.0+), if present.
    public var wallTime: Int64? {
        get { storage.wallTime }
        set { update { $0.wallTime = newValue } }
    }
    /// The collection (or database, for `dropDatabase`) the event is about; absent on `invalidate`.
    public var namespace: Namespace? {
        get { storage.namespace }
        set { update { $0.namespace = newValue } }
    }
    /// The new name of a renamed collection (`to`).
    public var renamedTo: Namespace? {
        get { storage.renamedTo }
        set { update { $0.renamedTo = newValue } }
    }
    /// `documentKey` as its BSON bytes (applying reads only its `_id`).
    public var encodedDocumentKey: EncodedBSONDocument? {
        get { storage.key.map(storage.document) }
        set {
            update { storage in
                storage.key = nil
                if let newValue { storage.key = storage.keep(newValue) }
                storage.documentID = newValue?["_id"]
            }
        }
    }
    /// `documentKey._id`, the value the cache key is made from (read once, when the document key is set).
    public var documentID: BSONValue? { storage.documentID }
    /// The changed fields of an `update`.
    public var updateDescription: UpdateDescription? {
        get { storage.updateDescription }
        set { update { $0.updateDescription = newValue } }
    }
    /// The document after the change, when the event carries one.
    public var fullDocument: FullDocument {
        get {
            switch storage.after {
            case .absent: .absent
            case .null: .null
            case .document(let range): .document(storage.document(range))
            }
        }
        set {
            update { storage in
                storage.after = switch newValue {
                case .absent: .absent
                case .null: .null
                case .document(let document): .document(storage.keep(document))
                }
            }
        }
    }

    /// The event's fields, in one box shared by its copies (and copied before a change when shared): applying
    /// copies every event it reads several times, and a copy is then one reference count instead of a copy of
    /// each field.
    private var storage: Storage

    private final class Storage: @unchecked Sendable {
        var operationType: OperationType
        var clusterTime: ClusterTime?
        var wallTime: Int64?
        var namespace: Namespace?
        var renamedTo: Namespace?
        var documentID: BSONValue?
        var updateDescription: UpdateDescription?
        /// The bytes the event's encoded documents lie in — a decoded event's own bytes — at the ranges below: the
        /// documents share one buffer. A document from another buffer is appended to it.
        var bytes: [UInt8]
        var token: Range<Int>
        var key: Range<Int>?
        var after: FullDocumentPart

        init(operationType: OperationType, clusterTime: ClusterTime?, wallTime: Int64?, namespace: Namespace?,
             renamedTo: Namespace?, documentID: BSONValue?, updateDescription: UpdateDescription?, bytes: [UInt8],
             token: Range<Int>, key: Range<Int>?, after: FullDocumentPart) {
            (self.operationType, self.clusterTime, self.wallTime) = (operationType, clusterTime, wallTime)
            (self.namespace, self.renamedTo, self.documentID) = (namespace, renamedTo, documentID)
            self.updateDescription = updateDescription
            (self.bytes, self.token, self.key, self.after) = (bytes, token, key, after)
        }

        func copy() -> Storage {
            Storage(operationType: operationType, clusterTime: clusterTime, wallTime: wallTime, namespace: namespace,
                    renamedTo: renamedTo, documentID: documentID, updateDescription: updateDescription, bytes: bytes,
                    token: token, key: key, after: after)
        }

        /// The document at `range` of `bytes` (checked when it was decoded or kept).
        func document(_ range: Range<Int>) -> EncodedBSONDocument {
            guard let document = EncodedBSONDocument(sharing: bytes, range: range) else {
                preconditionFailure("a change event holds a range that is not a document")
            }
            return document
        }

        /// Where `document` is in `bytes`: where it already was when it lies in the same buffer (`bytes` takes the
        /// first document's buffer), else appended.
        func keep(_ document: EncodedBSONDocument) -> Range<Int> {
            let (storage, range) = document.buffer
            if bytes.isEmpty { bytes = storage }
            let shared = bytes.withUnsafeBufferPointer { own in
                storage.withUnsafeBufferPointer { $0.baseAddress == own.baseAddress && $0.count == own.count }
            }
            if shared { return range }
            let start = bytes.count
            bytes.append(contentsOf: storage[range])
            return start..<bytes.count
        }
    }

    /// Changes the fields with `change`, on a box of this event's own.
    private mutating func update(_ change: (Storage) -> Void) {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        change(storage)
    }

    /// `fullDocument`, as it is kept.
    enum FullDocumentPart: Sendable {
        case absent, null
        /// The document at this range of `bytes`.
        case document(Range<Int>)
    }

    /// An event with every field given.
    public init(resumeToken: BSONDocument, operationType: OperationType, clusterTime: ClusterTime? = nil,
                wallTime: Int64? = nil, namespace: Namespace? = nil, renamedTo: Namespace? = nil,
                documentKey: BSONDocument? = nil, updateDescription: UpdateDescription? = nil,
                fullDocument: FullDocument = .absent) {
        let encodedDocumentKey = documentKey.map(EncodedBSONDocument.init)
        self.init(encodedResumeToken: EncodedBSONDocument(resumeToken), operationType: operationType,
                  clusterTime: clusterTime, wallTime: wallTime, namespace: namespace, renamedTo: renamedTo,
                  encodedDocumentKey: encodedDocumentKey, documentID: encodedDocumentKey?["_id"],
                  updateDescription: updateDescription, fullDocument: fullDocument)
    }

    /// An event with the token and the document key given as BSON bytes, and the key's `_id` read from it.
    init(encodedResumeToken: EncodedBSONDocument, operationType: OperationType, clusterTime: ClusterTime?,
         wallTime: Int64?, namespace: Namespace?, renamedTo: Namespace?, encodedDocumentKey: EncodedBSONDocument?,
         documentID: BSONValue?, updateDescription: UpdateDescription?, fullDocument: FullDocument) {
        storage = Storage(operationType: operationType, clusterTime: clusterTime, wallTime: wallTime,
                          namespace: namespace, renamedTo: renamedTo, documentID: documentID,
                          updateDescription: updateDescription, bytes: [], token: 0..<0, key: nil, after: .absent)
        storage.token = storage.keep(encodedResumeToken)
        if let encodedDocumentKey { storage.key = storage.keep(encodedDocumentKey) }
        self.fullDocument = fullDocument
    }

    /// A decoded event whose documents lie in `bytes` at the ranges given (each checked by the caller: within
    /// `bytes`, and a whole document).
    init(bytes: [UInt8], tokenRange: Range<Int>, operationType: OperationType, clusterTime: ClusterTime?,
         wallTime: Int64?, documentKeyRange: Range<Int>?, documentID: BSONValue?, fullDocument: FullDocumentPart) {
        storage = Storage(operationType: operationType, clusterTime: clusterTime, wallTime: wallTime, namespace: nil,
                          renamedTo: nil, documentID: documentID, updateDescription: nil, bytes: bytes,
                          token: tokenRange, key: documentKeyRange, after: fullDocument)
    }

    /// Events are equal when what they say is, however their documents are kept.
    public static func == (lhs: ChangeEvent, rhs: ChangeEvent) -> Bool {
        lhs.operationType == rhs.operationType && lhs.clusterTime == rhs.clusterTime && lhs.wallTime == rhs.wallTime
            && lhs.namespace == rhs.namespace && lhs.renamedTo == rhs.renamedTo && lhs.documentID == rhs.documentID
            && lhs.updateDescription == rhs.updateDescription && lhs.encodedResumeToken == rhs.encodedResumeToken
            && lhs.encodedDocumentKey == rhs.encodedDocumentKey && lhs.fullDocument == rhs.fullDocument
    }

    /// The resume token (`_id`, usually `{_data: "<hex>"}`).
    public var resumeToken: BSONDocument {
        get { Self.decodeChecked(encodedResumeToken) }
        set { encodedResumeToken = EncodedBSONDocument(newValue) }
    }

    /// `_id` and, on sharded collections, the shard key fields of the changed document.
    public var documentKey: BSONDocument? {
        get { encodedDocumentKey.map(Self.decodeChecked) }
        set { encodedDocumentKey = newValue.map(EncodedBSONDocument.init) }
    }

    /// A document the event holds as bytes: encoded from a tree, or checked when the event was decoded, so
    /// decoding it cannot fail.
    private static func decodeChecked(_ document: EncodedBSONDocument) -> BSONDocument {
        guard let decoded = try? document.decoded() else { preconditionFailure("a change event holds an invalid document") }
        return decoded
    }

    /// When the change happened, in seconds since the epoch: `wallTime`, else `clusterTime`.
    public var eventTimeSeconds: Double? {
        if let wallTime { return Double(wallTime) / 1000 }
        return clusterTime?.seconds
    }

    /// `fullDocument`: a change stream may leave it out, send `null` (updateLookup found nothing) or a document.
    public enum FullDocument: Sendable, Equatable {
        /// The event has no `fullDocument` field.
        case absent
        /// `fullDocument: null`.
        case null
        /// The document after the change, as its BSON bytes (decode with `decoded()` when a tree is needed). Decoded
        /// `.forApplying`, only its length and terminator were checked: `decoded()` and the JSON writer check the rest.
        case document(EncodedBSONDocument)
    }

    /// `clusterTime`: a BSON Timestamp from MongoDB, a date from nx-27017.
    public enum ClusterTime: Sendable, Equatable {
        /// A BSON Timestamp (seconds, increment).
        case timestamp(seconds: UInt32, increment: UInt32)
        /// A date in milliseconds since the epoch.
        case date(Int64)

        /// Seconds since the epoch.
        public var seconds: Double {
            switch self {
            case .timestamp(let seconds, _): Double(seconds)
            case .date(let ms): Double(ms) / 1000
            }
        }
    }

    /// `ns` or `to`: a database and, except for `dropDatabase`, a collection.
    public struct Namespace: Sendable, Equatable {
        /// Database name.
        public var database: String
        /// Collection name; `nil` for database-level events.
        public var collection: String?

        /// A namespace.
        public init(database: String, collection: String?) {
            self.database = database
            self.collection = collection
        }
    }
}
