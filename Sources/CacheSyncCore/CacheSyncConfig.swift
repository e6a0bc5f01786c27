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
    /// Whether `/readyz` answers 503 while a collection this instance applies is warming up.
    public var readyAfterWarmup = false

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
