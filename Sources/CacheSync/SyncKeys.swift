import CacheSyncCore

/// The Redis keys cachesync keeps for one collection, besides its cache entries.
public struct SyncKeys: Sendable, Equatable {
    /// `<checkpoint.keyPrefix>resume:<db>.<coll>`: the resume token, written with each batch.
    public let resume: String
    /// `<checkpoint.keyPrefix>leader:<db>.<coll>`: `<instanceId>|<epoch>` of the instance that applies it.
    public let leader: String
    /// `<checkpoint.keyPrefix>epoch:<db>.<coll>`: the fencing epoch counter.
    public let epoch: String
    /// `<checkpoint.keyPrefix>applied:<db>.<coll>`: events applied, ever (a hash: `events`, `batches`).
    public let applied: String
    /// `checkpoint.keyPrefix`: every collection's keys above start with it.
    public let checkpointPrefix: String

    /// The keys of a namespace under a checkpoint prefix.
    public init(checkpointPrefix: String, namespace: String) {
        resume = "\(checkpointPrefix)resume:\(namespace)"
        leader = "\(checkpointPrefix)leader:\(namespace)"
        epoch = "\(checkpointPrefix)epoch:\(namespace)"
        applied = "\(checkpointPrefix)applied:\(namespace)"
        self.checkpointPrefix = checkpointPrefix
    }
}
