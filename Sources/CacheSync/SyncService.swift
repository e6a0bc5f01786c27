import CacheSyncCore
import Foundation
import Logging
import MongoBridge
import ServiceLifecycle

/// Runs one `CollectionWatcher` per configured collection; on graceful shutdown each finishes and checkpoints
/// its batch in flight. Throws when a watcher must end the process (`onHistoryLost: fail`).
public final class SyncService: Service, @unchecked Sendable {
    private let watchers: [CollectionWatcher]
    private let logger: Logger

    /// Watchers for every collection of `config`.
    public init(config: CacheSyncConfig, instanceId: String, pool: MongoClientPool, telemetry: Telemetry, logger: Logger) {
        // One balancer spreads this process's leases among the live replicas.
        let balancer = config.lease.enabled
            ? LeaseBalancer(checkpointPrefix: config.checkpoint.keyPrefix, instanceId: instanceId,
                            ttl: config.lease.ttlSeconds, collections: config.collections.count)
            : nil
        var settings = CollectionWatcher.Settings()
        settings.idle = WatcherStateMachine.IdleTimings(streams: config.collections.count)
        watchers = config.collections.map {
            CollectionWatcher(collection: $0, config: config, instanceId: instanceId, pool: pool,
                              telemetry: telemetry, logger: logger, settings: settings, balancer: balancer)
        }
        self.logger = logger
    }

    /// Starts the watchers and waits until all have stopped.
    public func run() async throws {
        let (exits, continuation) = AsyncStream<Error?>.makeStream()
        for watcher in watchers {
            watcher.start { continuation.yield($0) }
        }
        let watchers = watchers
        try await withGracefulShutdownHandler {
            var remaining = watchers.count
            var failure: Error?
            for await exit in exits {
                remaining -= 1
                if let exit, failure == nil {
                    failure = exit
                    watchers.forEach { $0.requestStop() }
                }
                if remaining == 0 { break }
            }
            if let failure { throw failure }
        } onGracefulShutdown: {
            watchers.forEach { $0.requestStop() }
        }
    }

    /// The stable id of this instance: `CACHESYNC_INSTANCE_ID`, else `lease.instanceId`, else the hostname.
    public static func instanceId(config: CacheSyncConfig, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let id = environment["CACHESYNC_INSTANCE_ID"], !id.isEmpty { return id }
        if let id = config.lease.instanceId, !id.isEmpty { return id }
        return ProcessInfo.processInfo.hostName
    }
}
