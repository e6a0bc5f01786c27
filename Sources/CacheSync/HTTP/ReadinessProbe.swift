import Foundation
import RedisBridge

/// Decides `/readyz`: Redis answers PING (checked on a connection of its own with short timeouts, the answer
/// cached for at most `maxAge`), and every collection this instance leads has its change stream open.
final class ReadinessProbe: @unchecked Sendable {
    /// The answer of one check.
    struct Verdict: Sendable, Equatable {
        /// Why the instance is not ready; empty when it is.
        var reasons: [String]

        /// Whether the instance is ready.
        var ready: Bool { reasons.isEmpty }
    }

    private let redis: RedisConnection
    private let telemetry: Telemetry
    private let worker = BlockingWorkers(count: 1, name: "readyz")
    private let maxAge: Double
    private let lock = NSLock()
    private var lastPing: (time: Double, failure: String?) = (-.infinity, nil)

    /// A probe that pings Redis through `redis` and reads the streams' state from `telemetry`.
    init(redis: RedisConnection, telemetry: Telemetry, maxAge: Double = 1) {
        self.redis = redis
        self.telemetry = telemetry
        self.maxAge = maxAge
    }

    /// Checks readiness now (Redis at most `maxAge` old).
    func check() async -> Verdict {
        var reasons: [String] = []
        if let failure = await redisFailure() {
            reasons.append("redis does not answer: \(failure)")
        }
        for (ns, stats) in telemetry.snapshot().sorted(by: { $0.key < $1.key }) where stats.leader && !stats.streamOpen {
            reasons.append("collection \(ns): this instance applies it but its change stream is not open")
        }
        return Verdict(reasons: reasons)
    }

    /// Stops the probe's thread.
    func shutdown() {
        worker.shutdown()
        redis.close()
    }

    /// `nil` when Redis answered PING within `maxAge`, else what went wrong.
    private func redisFailure() async -> String? {
        if let cached = cachedFailure() { return cached }
        do {
            return try await worker.run { [self] _ in
                if let cached = cachedFailure() { return cached }
                let failure: String?
                do {
                    let reply = try redis.command(["PING"])
                    failure = reply == .status("PONG") ? nil : "unexpected reply to PING: \(reply)"
                } catch {
                    failure = "\(error)"
                }
                lock.withLock { lastPing = (ProcessInfo.processInfo.systemUptime, failure) }
                return failure
            }
        } catch {
            return "shutting down"
        }
    }

    /// The last ping's outcome while it is fresh: `.some(nil)` for success, `nil` when stale.
    private func cachedFailure() -> String?? {
        lock.withLock {
            ProcessInfo.processInfo.systemUptime - lastPing.time <= maxAge ? .some(lastPing.failure) : nil
        }
    }
}
