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
