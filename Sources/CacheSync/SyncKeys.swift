import CacheSyncCore
import RedisSlot

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
    /// `<checkpoint.keyPrefix>warmup:<db>.<coll>`: while a warm-up runs, where it continues (`WarmupPosition`).
    public let warmup: String
    /// `checkpoint.keyPrefix`: every collection's keys above start with it.
    public let checkpointPrefix: String

    /// The collection's namespace (`<db>.<coll>`).
    public let namespace: String

    /// The keys of a namespace under a checkpoint prefix. For a Redis Cluster the namespace is a hash tag
    /// (`resume:{<db>.<coll>}`), so that the keys share one slot and the lease script may use them together.
    public init(checkpointPrefix: String, namespace: String, cluster: Bool = false) {
        let tagged = cluster ? "{\(namespace)}" : namespace
        resume = "\(checkpointPrefix)resume:\(tagged)"
        leader = "\(checkpointPrefix)leader:\(tagged)"
        epoch = "\(checkpointPrefix)epoch:\(tagged)"
        applied = "\(checkpointPrefix)applied:\(tagged)"
        warmup = "\(checkpointPrefix)warmup:\(tagged)"
        self.checkpointPrefix = checkpointPrefix
        self.namespace = namespace
    }

    /// The cluster fence of `slot` (`<checkpoint.keyPrefix>fence{<tag>}`, in that slot): a hash of the highest lease
    /// epoch per namespace that writes to the slot must carry (`ClusterBatchWriter`).
    public func fence(slot: Int) -> String {
        "\(checkpointPrefix)fence{\(RedisSlot.tag(forSlot: slot))}"
    }
}
