import CacheSyncCore
import Foundation
import Logging
import MongoBridge
import ServiceLifecycle

/// Runs one `CollectionWatcher` per configured collection; on graceful shutdown each finishes and checkpoints
/// its batch in flight. A reload (`reconfigure`) stops the watchers of removed and changed collections and starts
/// those of added and changed ones, leaving the others running. Throws when a watcher must end the process
/// (`onHistoryLost: fail`).
public final class SyncService: Service, @unchecked Sendable {
    /// One started watcher and the signal of its end.
    private final class Running: @unchecked Sendable {
        let watcher: CollectionWatcher
        private let lock = NSLock()
        private var ended = false
        private var waiters: [CheckedContinuation<Void, Never>] = []

        init(_ watcher: CollectionWatcher) {
            self.watcher = watcher
        }

        /// The watcher's thread ended.
        func finish() {
            let waiting = lock.withLock {
                ended = true
                defer { waiters = [] }
                return waiters
            }
            waiting.forEach { $0.resume() }
        }

        /// Returns once the watcher's thread has ended.
        func waitUntilEnded() async {
            await withCheckedContinuation { continuation in
                let done = lock.withLock {
                    if !ended { waiters.append(continuation) }
                    return ended
                }
                if done { continuation.resume() }
            }
        }
    }

    /// What the run loop hears: a watcher ended (with the error that ended it), or shutdown asks it to look again.
    private enum Exit {
        case watcher(Running, Error?)
        case wake
    }

    private let instanceId: String
    private let pool: MongoClientPool
    private let telemetry: Telemetry
    private let logger: Logger
    /// Spreads this process's leases among the live replicas; `nil` without leases.
    private let balancer: LeaseBalancer?
    private let exits: AsyncStream<Exit>
    private let exitContinuation: AsyncStream<Exit>.Continuation

    private let lock = NSLock()
    /// The watchers of the configured collections, by namespace.
    private var live: [String: Running] = [:]
    /// The collections in order, as the config lists them (the order watchers start in).
    private var order: [String] = []
    /// Watchers a reload stopped that have not ended yet: shutdown waits for them too.
    private var retiring: Set<ObjectIdentifier> = []
    private var started = false
    private var stopping = false

    /// Watchers for every collection of `config`.
    public init(config: CacheSyncConfig, instanceId: String, pool: MongoClientPool, telemetry: Telemetry, logger: Logger) {
        // One balancer spreads this process's leases among the live replicas.
        balancer = config.lease.enabled
            ? LeaseBalancer(checkpointPrefix: config.checkpoint.keyPrefix, instanceId: instanceId,
                            ttl: config.lease.ttlSeconds, collections: config.collections.count)
            : nil
        self.instanceId = instanceId
        self.pool = pool
        self.telemetry = telemetry
        self.logger = logger
        (exits, exitContinuation) = AsyncStream<Exit>.makeStream()
        for collection in config.collections {
            live[collection.namespace] = Running(makeWatcher(collection, config: config))
            order.append(collection.namespace)
        }
    }

    private func makeWatcher(_ collection: CollectionConfig, config: CacheSyncConfig) -> CollectionWatcher {
        var settings = CollectionWatcher.Settings()
        settings.idle = WatcherStateMachine.IdleTimings(streams: config.collections.count)
        return CollectionWatcher(collection: collection, config: config, instanceId: instanceId, pool: pool,
                                 telemetry: telemetry, logger: logger, settings: settings, balancer: balancer)
    }

    private func start(_ running: Running) {
        running.watcher.start { [exitContinuation] error in
            running.finish()
            exitContinuation.yield(.watcher(running, error))
        }
    }

    /// Starts the watchers and waits until all have stopped (graceful shutdown, or a watcher that failed).
    public func run() async throws {
        let first = lock.withLock {
            started = true
            return order.compactMap { live[$0] }
        }
        first.forEach(start)
        try await withGracefulShutdownHandler {
            var failure: Error?
            for await exit in exits {
                let done: Bool = lock.withLock {
                    if case .watcher(let running, _) = exit {
                        retiring.remove(ObjectIdentifier(running))
                    }
                    if case .watcher(let running, let error) = exit,
                       let ns = live.first(where: { $0.value === running })?.key {
                        // A watcher of the config in force ended: only an error or a stop does that.
                        live[ns] = nil
                        if let error, failure == nil {
                            failure = error
                            stopping = true
                            live.values.forEach { $0.watcher.requestStop() }
                        }
                    }
                    // Watchers a reload stopped are not in `live`; the reload waits for them itself.
                    return stopping && live.isEmpty && retiring.isEmpty
                }
                if done { break }
            }
            if let failure { throw failure }
        } onGracefulShutdown: { [self] in
            lock.withLock {
                stopping = true
                live.values.forEach { $0.watcher.requestStop() }
            }
            exitContinuation.yield(.wake)
        }
    }

    /// Puts a reloaded config in force (`diff` is between the running config and `new`): the watchers of removed
    /// and changed collections finish and checkpoint their batch in flight, release their leases and stop; then
    /// those of added and changed ones start (an added collection starts as any collection without a checkpoint
    /// does: flushed, watched from now). The other watchers are not touched. `beforeStart` runs between the two
    /// (the HTTP side and the telemetry learn the new collection set there). Returns `false`, starting nothing,
    /// when the service is shutting down.
    @discardableResult
    func reconfigure(to new: CacheSyncConfig, diff: ConfigDiff, beforeStart: () -> Void = {}) async -> Bool {
        let outgoing = diff.removed.map(\.namespace) + diff.changed.map(\.old.namespace)
        let stopped: [Running]? = lock.withLock {
            guard !stopping else { return nil }
            let leaving = outgoing.compactMap { live.removeValue(forKey: $0) }
            // Watchers that never started (a reload before `run`) have no thread to wait for.
            guard started else { return [] }
            leaving.forEach { retiring.insert(ObjectIdentifier($0)) }
            leaving.forEach { $0.watcher.requestStop() }
            return leaving
        }
        guard let stopped else { return false }
        for running in stopped {
            await running.waitUntilEnded()
        }
        balancer?.reconfigure(collections: new.collections.count, removed: diff.removed.map(\.namespace))
        beforeStart()
        let incoming = diff.added + diff.changed.map(\.new)
        let starting: [Running]? = lock.withLock {
            guard !stopping else { return nil }
            order = new.collections.map(\.namespace)
            // The seam for warm-up: a collection added here starts like one without a checkpoint (no
            // checkpoint: flush, then watch from now); a warm-up would run in its watcher's resync step.
            let fresh = incoming.map { Running(makeWatcher($0, config: new)) }
            for running in fresh {
                live[running.watcher.collection.namespace] = running
            }
            return started ? fresh : []
        }
        guard let starting else { return false }
        starting.forEach(start)
        return true
    }

    /// The stable id of this instance: `CACHESYNC_INSTANCE_ID`, else `lease.instanceId`, else the hostname.
    public static func instanceId(config: CacheSyncConfig, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let id = environment["CACHESYNC_INSTANCE_ID"], !id.isEmpty { return id }
        if let id = config.lease.instanceId, !id.isEmpty { return id }
        return ProcessInfo.processInfo.hostName
    }
}
