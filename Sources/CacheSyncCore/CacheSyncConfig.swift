/// The validated configuration of one cachesync process (docs/ARCHITECTURE.md §3).
public struct CacheSyncConfig: Sendable, Equatable {
    /// Where MongoDB is.
    public var mongodb: MongoSettings
    /// Where Redis is, and the prefix of every cache key.
    public var redis: RedisSettings
    /// Where the HTTP endpoints listen.
    public var http: HTTPSettings
    /// Where resume tokens and leases live in Redis.
    public var checkpoint: CheckpointSettings
    /// Leadership between replicas.
    public var lease: LeaseSettings
    /// The collections to watch, in the order the file lists them.
    public var collections: [CollectionConfig]
    /// How long SIGTERM may take to drain, in seconds.
    public var shutdownTimeout: Double
    /// The path the config was read from (for messages).
    public var sourcePath: String

    /// A configuration with every field given.
    public init(mongodb: MongoSettings, redis: RedisSettings, http: HTTPSettings = .init(),
                checkpoint: CheckpointSettings = .init(), lease: LeaseSettings = .init(),
                collections: [CollectionConfig], shutdownTimeout: Double = 10, sourcePath: String = "cachesync.yaml") {
        self.mongodb = mongodb
        self.redis = redis
        self.http = http
        self.checkpoint = checkpoint
        self.lease = lease
        self.collections = collections
        self.shutdownTimeout = shutdownTimeout
        self.sourcePath = sourcePath
    }
}

/// `mongodb:` settings.
public struct MongoSettings: Sendable, Equatable {
    /// The connection string (may hold a password: never log it).
    public var uri: String
    /// The database of collections named without one (empty when every collection names its database).
    public var database: String

    /// Settings with a URI and a default database.
    public init(uri: String, database: String) {
        self.uri = uri
        self.database = database
    }
}

/// `redis:` settings.
public struct RedisSettings: Sendable, Equatable {
    /// `redis://[user[:password]@]host:port[/db]` (may hold a password: never log it).
    public var url: String
    /// Prepended to every cache key.
    public var keyPrefix: String
    /// `url` parsed: host, port, database number, user and password.
    public var endpoint: RedisURL

    /// Settings with a URL and a key prefix; a URL that does not parse gives the default endpoint
    /// (`ConfigLoader` rejects such URLs before they get here).
    public init(url: String, keyPrefix: String = "") {
        self.url = url
        self.keyPrefix = keyPrefix
        self.endpoint = (try? RedisURL(parsing: url)) ?? RedisURL()
    }

    /// Settings from an already parsed endpoint.
    public init(url: String, endpoint: RedisURL, keyPrefix: String = "") {
        self.url = url
        self.keyPrefix = keyPrefix
        self.endpoint = endpoint
    }
}

/// `http:` settings.
public struct HTTPSettings: Sendable, Equatable {
    /// Host part of `listen`.
    public var host: String
    /// Port part of `listen`.
    public var port: Int
    /// Seconds without an event after which a collection is reported silent (0: never).
    public var silenceWarningSeconds: Double

    /// `host:port` as written in `http.listen` (IPv6 hosts in brackets).
    public var listen: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Settings for one listening address.
    public init(host: String = "127.0.0.1", port: Int = 9464, silenceWarningSeconds: Double = 0) {
        self.host = host
        self.port = port
        self.silenceWarningSeconds = silenceWarningSeconds
    }
}

/// `checkpoint:` settings.
public struct CheckpointSettings: Sendable, Equatable {
    /// Resume tokens live at `<keyPrefix>resume:<db>.<coll>`, leases at `<keyPrefix>leader:<db>.<coll>`.
    public var keyPrefix: String

    /// Settings with a key prefix.
    public init(keyPrefix: String = "cachesync:") {
        self.keyPrefix = keyPrefix
    }
}

/// `lease:` settings: one applier per collection across replicas.
public struct LeaseSettings: Sendable, Equatable {
    /// Whether leadership is used at all (off only for a single instance).
    public var enabled: Bool
    /// How long a lease lasts without renewal, in seconds.
    public var ttlSeconds: Double
    /// The stable id of this instance (`CACHESYNC_INSTANCE_ID`, else the hostname) when set in the file.
    public var instanceId: String?

    /// Lease settings.
    public init(enabled: Bool = true, ttlSeconds: Double = 10, instanceId: String? = nil) {
        self.enabled = enabled
        self.ttlSeconds = ttlSeconds
        self.instanceId = instanceId
    }
}

/// The cache strategy of a collection (docs/ARCHITECTURE.md §4).
public enum StrategyKind: String, Sendable, Equatable, CaseIterable {
    /// Delete the cached key when the document changes.
    case invalidate
    /// Write the new document, with an adaptive TTL.
    case update
    /// Refresh a cached document, keeping its remaining TTL.
    case preserveTTL = "preserve-ttl"

    /// The document operations applied when the config lists none.
    public var defaultOperations: Set<DocumentOperation> {
        switch self {
        case .invalidate: [.update, .replace, .delete]
        case .update, .preserveTTL: [.insert, .update, .replace, .delete]
        }
    }
}

/// A document-level change a strategy may act on.
public enum DocumentOperation: String, Sendable, Equatable, Hashable, CaseIterable {
    /// A new document.
    case insert
    /// A partial update (`$set`, `$inc`, ...).
    case update
    /// A whole-document replacement.
    case replace
    /// A removed document.
    case delete
}

/// How the read-through API parses `{id}`.
public enum IDType: String, Sendable, Equatable, CaseIterable {
    /// 24 hex digits → ObjectId, an integer → int, else string.
    case auto
    /// 24 hex digits, as an ObjectId.
    case objectId
    /// The text as it is.
    case string
    /// A decimal integer (int64).
    case int
    /// `8-4-4-4-12` hex digits, as a UUID (binary subtype 4).
    case uuid
}

/// What to do when the server no longer has the history a resume token needs.
public enum HistoryLostPolicy: String, Sendable, Equatable, CaseIterable {
    /// Remove every key of the collection and restart from now.
    case flush
    /// Exit 1 with a clear message.
    case fail
}

/// One adaptive-TTL tier: keys read at least `minAccesses` times get `ttl` seconds.
public struct TTLTier: Sendable, Equatable {
    /// Accesses needed for this tier.
    public var minAccesses: Int
    /// TTL in seconds.
    public var ttl: Int

    /// A tier.
    public init(minAccesses: Int, ttl: Int) {
        self.minAccesses = minAccesses
        self.ttl = ttl
    }
}

/// TTL settings: a base TTL and adaptive tiers, highest `minAccesses` first.
public struct TTLPolicy: Sendable, Equatable {
    /// Seconds, used when no tier matches.
    public var base: Int
    /// Tiers in descending `minAccesses` order.
    public var tiers: [TTLTier]

    /// A policy.
    public init(base: Int = 300, tiers: [TTLTier] = []) {
        self.base = base
        self.tiers = tiers
    }

    /// The TTL for a key read `accesses` times: the first tier it reaches, else `base`.
    public func ttl(forAccesses accesses: Int) -> Int {
        tiers.first(where: { accesses >= $0.minAccesses })?.ttl ?? base
    }
}

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

    /// A collection config; unspecified fields take the defaults of docs/ARCHITECTURE.md §3.
    public init(database: String, collection: String, strategy: StrategyKind,
                operations: Set<DocumentOperation>? = nil, ttl: TTLPolicy = TTLPolicy(),
                accessWindow: Int = 86400, keyTemplate: String = "{coll}:{id}", idType: IDType = .auto,
                onHistoryLost: HistoryLostPolicy = .flush, maxValueBytes: Int = 1 << 20) {
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
