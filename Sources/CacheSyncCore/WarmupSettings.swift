/// Whether and how a collection's cache is filled from a snapshot of the collection when it has no checkpoint or
/// lost its history (`warmup:`, docs/ARCHITECTURE.md §5 "Warm-up").
public struct WarmupSettings: Sendable, Equatable {
    /// Whether warm-up runs at all (`warmup: none` turns it off; `all` or a map turns it on).
    public var enabled: Bool
    /// Documents to cache at most: the first ones in `sort` order, or in `_id` order without `sort`; `nil` caches
    /// every one (`all`).
    public var limit: Int?
    /// The order that picks the `limit` documents (`sort: { updatedAt: -1 }`), fields in the order given; empty
    /// picks the first by `_id`. The picked documents are still read and written in `_id` order.
    public var sort: [WarmupSortKey]
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
    /// The largest `limit` with `sort`: the picked `_id`s are sent back to the server in one `$in` to order them
    /// by `_id`, which must fit in a 16 MB command.
    public static let maxSortedLimit = 100_000

    /// Warm-up off (`warmup: none`, the default).
    public static let none = WarmupSettings(enabled: false)
    /// Every document (`warmup: all`).
    public static let all = WarmupSettings(enabled: true)

    /// Settings with the defaults for what is not given.
    public init(enabled: Bool, limit: Int? = nil, sort: [WarmupSortKey] = [], chunkSize: Int = Self.defaultChunkSize,
                share: Double = Self.defaultShare) {
        self.enabled = enabled
        self.limit = limit
        self.sort = sort
        self.chunkSize = chunkSize
        self.share = share
    }
}

/// One field of `warmup.sort`: a dotted field path, ascending (`1`) or descending (`-1`).
public struct WarmupSortKey: Sendable, Equatable {
    /// The dotted field path, e.g. `updatedAt` or `meta.updated`.
    public var path: String
    /// Whether the order is descending (`-1`).
    public var descending: Bool

    /// A sort field.
    public init(path: String, descending: Bool) {
        self.path = path
        self.descending = descending
    }

    /// `1` or `-1`, as written in the config and sent to MongoDB.
    public var direction: Int { descending ? -1 : 1 }
}
