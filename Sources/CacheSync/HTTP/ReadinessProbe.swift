import Foundation
import RedisBridge
import RedisSlot

/// Decides `/readyz`: Redis answers PING (checked on a connection of its own with short timeouts, the answer
/// cached for at most `maxAge`) and is what the config says (a Redis Cluster serving every slot with `redis.cluster`,
/// not a cluster node without it), every collection this instance leads has its change stream open, and, with
/// `readyAfterWarmup`, none of them is warming up.
final class ReadinessProbe: @unchecked Sendable {
    /// The answer of one check.
    struct Verdict: Sendable, Equatable {
        /// Why the instance is not ready; empty when it is.
        var reasons: [String]

        /// Whether the instance is ready.
        var ready: Bool { reasons.isEmpty }
    }

    private let redis: any RedisClient
    private let telemetry: Telemetry
    private let worker = BlockingWorkers(count: 1, name: "readyz")
    private let maxAge: Double
    private let readyAfterWarmup: Bool
    private let lock = NSLock()
    private var lastPing: (time: Double, failure: String?) = (-.infinity, nil)

    /// A probe that pings Redis through `redis` and reads the streams' state from `telemetry`.
    init(redis: any RedisClient, telemetry: Telemetry, maxAge: Double = 1, readyAfterWarmup: Bool = false) {
        self.readyAfterWarmup = readyAfterWarmup
        self.redis = redis
        self.telemetry = telemetry
        self.maxAge = maxAge
    }

    /// Checks readiness now (Redis at most `maxAge` old).
    func check() async -> Verdict {
        var reasons: [String] = []
        if let failure = await redisFailure() {
            reasons.append(failure)
        }
        for (ns, stats) in telemetry.snapshot().sorted(by: { $0.key < $1.key }) where stats.leader && !stats.streamOpen {
            reasons.append("collection \(ns): this instance applies it but its change stream is not open")
        }
        if readyAfterWarmup {
            for (ns, stats) in telemetry.snapshot().sorted(by: { $0.key < $1.key }) where stats.leader && stats.warmingUp {
                reasons.append("collection \(ns): warming up (\(stats.warmupRemaining) documents to go; readyAfterWarmup is set)")
            }
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
                    failure = try Self.failure(of: redis)
                } catch {
                    failure = "redis does not answer: \(error)"
                }
                lock.withLock { lastPing = (ProcessInfo.processInfo.systemUptime, failure) }
                return failure
            }
        } catch {
            return "shutting down"
        }
    }

    /// On a Redis Cluster, its masters and their slots as this probe last saw them (asked now when never seen);
    /// `nil` for one server or when the cluster cannot be asked.
    func clusterTopology() async -> [StatsReport.ClusterMaster]? {
        guard let cluster = redis as? RedisCluster else { return nil }
        return try? await worker.run { _ in
            try cluster.topology().map { master, slots in
                StatsReport.ClusterMaster(node: master.description, slots: slots.map {
                    $0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)"
                })
            }
        }
    }

    /// What is wrong with `redis`, or `nil`: it answers PING, and is a cluster exactly when the config says so.
    private static func failure(of redis: any RedisClient) throws(RedisError) -> String? {
        if let cluster = redis as? RedisCluster {
            try cluster.refreshTopology()
            let served = try cluster.topology().reduce(0) { $0 + $1.slots.reduce(0) { $0 + $1.count } }
            if served < RedisSlot.count {
                return "redis \(cluster.endpoint): only \(served) of the \(RedisSlot.count) slots are served by a master"
            }
        }
        let reply = try redis.command(["PING"])
        guard reply == .status("PONG") else { return "redis does not answer: unexpected reply to PING: \(reply)" }
        if let server = redis as? RedisConnection,
           try server.command(["INFO", "cluster"]).text?.contains("cluster_enabled:1") == true {
            return """
                redis \(server.options.endpoint) is a Redis Cluster node, but redis.cluster is not set: \
                set it (redis.cluster: {}) so that each key goes to its slot's master
                """
        }
        return nil
    }

    /// The last ping's outcome while it is fresh: `.some(nil)` for success, `nil` when stale.
    private func cachedFailure() -> String?? {
        lock.withLock {
            ProcessInfo.processInfo.systemUptime - lastPing.time <= maxAge ? .some(lastPing.failure) : nil
        }
    }
}
