/// One watched collection and how it maps to Redis.
public struct CollectionConfig: Sendable, Equatable {
    /// Database name.
    public var database: String
    /// Collection name.
    public var collection: String
    /// The strategy.
    public var strategy: StrategyKind
    /// The document operations the strategy acts on.
    public var operations: Set<DocumentOperation> {
        didSet { operationBits = Self.bits(operations) }
    }
    /// `operations`, one bit each: what `actsOn` reads for every event instead of hashing.
    private var operationBits: UInt8
    /// TTL settings.
    public var ttl: TTLPolicy
    /// Access counters expire after this many seconds without access.
    public var accessWindow: Int
    /// Key template with `{db}`, `{coll}`, `{id}`.
    public var keyTemplate: String
    /// How `{id}` is parsed by the read-through API.
    public var idType: IDType
    /// What history loss does.
    public var onHistoryLost: HistoryLostPolicy
    /// Documents larger than this (as JSON) are not cached.
    public var maxValueBytes: Int
    /// Seconds the read-through API remembers that a document does not exist (0: not at all); a write event for it
    /// forgets at once.
    public var notFoundTTL: Int
    /// The fields cached (`project`); `nil` caches the whole document.
    public var projection: Projection?
    /// Which documents are cached (`filter`); `nil` caches every one.
    public var filter: DocumentFilter?
    /// How documents are stored (`format`).
    public var format = ValueFormat.json
    /// The secondary keys kept in step with each document (`indexes`).
    public var indexes: [SecondaryIndex] = []
    /// Whether the collection has pre-images (`preImages`): a secondary key's old value then comes from the change
    /// event's `fullDocumentBeforeChange` instead of a record kept in Redis.
    public var preImages = false
    /// Whether and how the cache is filled from a snapshot when there is no checkpoint or history was lost.
    public var warmup = WarmupSettings.none

    /// A collection config; unspecified fields take the defaults of docs/ARCHITECTURE.md §3.
    public init(database: String, collection: String, strategy: StrategyKind,
                operations: Set<DocumentOperation>? = nil, ttl: TTLPolicy = TTLPolicy(),
                accessWindow: Int = 86400, keyTemplate: String = "{coll}:{id}", idType: IDType = .auto,
                onHistoryLost: HistoryLostPolicy = .flush, maxValueBytes: Int = 1 << 20, notFoundTTL: Int = 5) {
        self.database = database
        self.collection = collection
        self.strategy = strategy
        self.operations = operations ?? strategy.defaultOperations
        operationBits = Self.bits(self.operations)
        self.ttl = ttl
        self.accessWindow = accessWindow
        self.keyTemplate = keyTemplate
        self.idType = idType
        self.onHistoryLost = onHistoryLost
        self.maxValueBytes = maxValueBytes
        self.notFoundTTL = notFoundTTL
    }

    /// `<db>.<coll>`.
    public var namespace: String { "\(database).\(collection)" }

    /// Whether the strategy acts on `operation` (it is one of `operations`).
    public func actsOn(_ operation: DocumentOperation) -> Bool {
        operationBits & Self.bit(operation) != 0
    }

    private static func bits(_ operations: Set<DocumentOperation>) -> UInt8 {
        operations.reduce(0) { $0 | bit($1) }
    }

    private static func bit(_ operation: DocumentOperation) -> UInt8 {
        switch operation {
        case .insert: 1
        case .update: 2
        case .replace: 4
        case .delete: 8
        }
    }
}
