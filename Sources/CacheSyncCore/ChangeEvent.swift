import BSONModel

/// One MongoDB change event, decoded from the real server format (DESIGN.md §8).
public struct ChangeEvent: Sendable, Equatable {
    /// The resume token (`_id`, usually `{_data: "<hex>"}`).
    public var resumeToken: BSONDocument
    /// What happened.
    public var operationType: OperationType
    /// When it happened in the cluster, if the event says.
    public var clusterTime: ClusterTime?
    /// Wall-clock time of the change in milliseconds since the epoch (MongoDB 6.0+), if present.
    public var wallTime: Int64?
    /// The collection (or database, for `dropDatabase`) the event is about; absent on `invalidate`.
    public var namespace: Namespace?
    /// The new name of a renamed collection (`to`).
    public var renamedTo: Namespace?
    /// `_id` and, on sharded collections, the shard key fields of the changed document.
    public var documentKey: BSONDocument?
    /// The changed fields of an `update`.
    public var updateDescription: UpdateDescription?
    /// The document after the change, when the event carries one.
    public var fullDocument: FullDocument

    /// An event with every field given.
    public init(resumeToken: BSONDocument, operationType: OperationType, clusterTime: ClusterTime? = nil,
                wallTime: Int64? = nil, namespace: Namespace? = nil, renamedTo: Namespace? = nil,
                documentKey: BSONDocument? = nil, updateDescription: UpdateDescription? = nil,
                fullDocument: FullDocument = .absent) {
        self.resumeToken = resumeToken
        self.operationType = operationType
        self.clusterTime = clusterTime
        self.wallTime = wallTime
        self.namespace = namespace
        self.renamedTo = renamedTo
        self.documentKey = documentKey
        self.updateDescription = updateDescription
        self.fullDocument = fullDocument
    }

    /// `documentKey._id`, the value the cache key is made from.
    public var documentID: BSONValue? { documentKey?["_id"] }

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
        /// The document after the change, as its BSON bytes (decode with `decoded()` when a tree is needed).
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
