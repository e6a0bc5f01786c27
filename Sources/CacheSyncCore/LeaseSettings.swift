/// `lease:` settings: one applier per collection across replicas.
public struct LeaseSettings: Sendable, Equatable {
    /// Whether leadership is used at all (off only for a single instance).
    public var enabled: Bool
    /// How long a lease lasts without renewal, in seconds.
    public var ttlSeconds: Double
    /// The stable id of this instance when set in the file (`CACHESYNC_INSTANCE_ID` comes first, the hostname last).
    public var instanceId: String?

    /// Lease settings.
    public init(enabled: Bool = true, ttlSeconds: Double = 10, instanceId: String? = nil) {
        self.enabled = enabled
        self.ttlSeconds = ttlSeconds
        self.instanceId = instanceId
    }
}
