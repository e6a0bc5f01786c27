/// Whether and how a collection's cache is filled from a snapshot of the collection when it has no checkpoint or
/// lost its history (`warmup:`, docs/ARCHITECTURE.md §5 "Warm-up").
public struct WarmupSettings: Sendable, Equatable {
    /// Whether warm-up runs at all (`warmup: none` turns it off; `all` or a map turns it on).
    public var enabled: Bool
    /// Documents to cache at most, in `_id` order; `nil` caches every one (`all`).
    public var limit: Int?
    /// Documents read per chunk (`find` sorted by `_id`, `_id` above the last chunk's); one chunk is written, and
    /// its position recorded, in one fenced step.
    public var chunkSize: Int
    /// The share of wall time the warm-up may spend reading from MongoDB, above 0 up to 1: after a chunk's read
    /// took `t`, the next read starts no sooner than `t / share` after it began.
    public var share: Double

    /// The default `chunkSize` (Debezium's incremental snapshot chunk size).
    public static let defaultChunkSize = 1024
    /// The default `share`.
    public static let defaultShare = 0.5

    /// Warm-up off (`warmup: none`, the default).
    public static let none = WarmupSettings(enabled: false)
    /// Every document (`warmup: all`).
    public static let all = WarmupSettings(enabled: true)

    /// Settings with the defaults for what is not given.
    public init(enabled: Bool, limit: Int? = nil, chunkSize: Int = Self.defaultChunkSize, share: Double = Self.defaultShare) {
        self.enabled = enabled
        self.limit = limit
        self.chunkSize = chunkSize
        self.share = share
    }
}
