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
