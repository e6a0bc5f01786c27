/// Capped exponential backoff with equal jitter (uniform in the upper half of the ceiling), for reconnecting to MongoDB and Redis.
public struct Backoff: Sendable, Equatable {
    /// The first delay, in seconds.
    public var base: Double
    /// The largest delay, in seconds.
    public var cap: Double
    /// Failures since the last success.
    public private(set) var attempts = 0

    /// A backoff starting at `base` seconds and never waiting more than `cap`.
    public init(base: Double = 0.1, cap: Double = 10) {
        self.base = base
        self.cap = cap
    }

    /// The ceiling of the next delay: `base · 2^attempts`, at most `cap`.
    public var ceiling: Double {
        min(cap, base * Double(1 << min(attempts, 30)))
    }

    /// Counts a failure and returns how long to wait: uniform in `[ceiling/2, ceiling]`, so waits spread out
    /// across replicas but never collapse to zero.
    public mutating func nextDelay<R: RandomNumberGenerator>(using random: inout R) -> Double {
        let top = ceiling
        attempts += 1
        return Double.random(in: (top / 2)...top, using: &random)
    }

    /// Counts a failure and returns how long to wait, with the system random source.
    public mutating func nextDelay() -> Double {
        var random = SystemRandomNumberGenerator()
        return nextDelay(using: &random)
    }

    /// Forgets past failures after a success.
    public mutating func reset() {
        attempts = 0
    }
}
