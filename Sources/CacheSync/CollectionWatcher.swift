import BSONModel
import CacheSyncCore
import Foundation
import Logging
import MongoBridge
import RedisBridge

/// Watches one collection on its own thread and applies its changes to Redis, in stream order.
///
/// Every failure is handled here: resumable MongoDB and Redis errors reopen the stream from the checkpoint
/// stored in Redis with capped, jittered backoff; lost history flushes the collection (or ends the process with
/// `onHistoryLost: fail`); a fenced write gives up leadership. Only a `fail` policy ends the watcher with an error.
final class CollectionWatcher: @unchecked Sendable {
    /// Tuning knobs.
    struct Settings: Sendable {
        /// Events per applied batch, at most.
        var maxBatchEvents = 256
        /// Raw event bytes per applied batch, at most.
        var maxBatchBytes = 8 << 20
        /// How long a batch may gather events.
        var batchWindow = 0.005
        /// Sleep after an empty batch (nx-27017 ignores maxAwaitTimeMS and answers at once).
        var idleSleep = 0.05
        /// How long the server may hold an empty getMore.
        var maxAwaitTimeMS: Int64 = 100
        /// How often an idle stream's newer resume token is saved.
        var idleCheckpointInterval = 1.0
        /// Test-only: seconds to wait between reading a batch and applying it (`CACHESYNC_TEST_APPLY_DELAY`),
        /// so a test can pause the process with a batch in flight and prove the fence.
        var testApplyDelay = 0.0

        /// The defaults, with the test-only delay from the environment.
        static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Settings {
            var settings = Settings()
            settings.testApplyDelay = environment["CACHESYNC_TEST_APPLY_DELAY"].flatMap(Double.init) ?? 0
            return settings
        }
    }

    /// Ends the watcher: history was lost and the collection's policy is `fail`.
    struct HistoryLostFailure: Error, CustomStringConvertible {
        let description: String
    }

    let collection: CollectionConfig
    private let namespace: MongoNamespace
    private let ns: String
    private let keyPrefix: String
    private let pool: MongoClientPool
    private let redis: RedisConnection
    private let applier: BatchApplier
    private let lease: LeaderLease?
    private let telemetry: Telemetry
    private let logger: Logger
    private let settings: Settings

    /// How often a standby tries to claim the lease: a fifth of the lease time, at most a second.
    private let standbyPoll: Double
    private let condition = NSCondition()
    private var stopRequested = false

    /// A watcher for one collection; `start` runs it.
    init(collection: CollectionConfig, config: CacheSyncConfig, instanceId: String, pool: MongoClientPool,
         telemetry: Telemetry, logger: Logger, settings: Settings = .fromEnvironment()) {
        self.collection = collection
        namespace = MongoNamespace(database: collection.database, collection: collection.collection)
        ns = collection.namespace
        keyPrefix = config.redis.keyPrefix
        self.pool = pool
        redis = config.redisConnection()
        let keys = SyncKeys(checkpointPrefix: config.checkpoint.keyPrefix, namespace: collection.namespace)
        applier = BatchApplier(redis: redis, keys: keys)
        lease = config.lease.enabled ? LeaderLease(keys: keys, instanceId: instanceId, ttl: config.lease.ttlSeconds) : nil
        self.telemetry = telemetry
        var logger = logger
        logger[metadataKey: "collection"] = "\(collection.namespace)"
        self.logger = logger
        self.settings = settings
        standbyPoll = min(1, config.lease.ttlSeconds / 5)
    }

    /// Starts the watcher thread; `onExit` runs on that thread when it ends (with the error that ended it).
    func start(onExit: @escaping @Sendable (Error?) -> Void) {
        let thread = Thread { [self] in
            let result = run()
            onExit(result)
        }
        thread.name = "watch \(ns)"
        thread.start()
    }

    /// Asks the watcher to finish the batch in flight, checkpoint it and stop.
    func requestStop() {
        condition.lock()
        stopRequested = true
        condition.broadcast()
        condition.unlock()
    }

    private var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopRequested
    }

    /// Sleeps `seconds`, waking early when a stop is requested.
    private func pause(_ seconds: Double) {
        condition.lock()
        let until = Date().addingTimeInterval(seconds)
        while !stopRequested, condition.wait(until: until) {}
        condition.unlock()
    }

    // MARK: - The loop

    /// State of the loop between batches.
    private struct LoopState {
        var stream: ChangeStream?
        var backoff = Backoff(base: 0.1, cap: 10)
        var lastCheckpointToken: BSONDocument?
        var lastIdleSave = Date.distantPast
    }

    private func run() -> Error? {
        var state = LoopState()
        logger.info("watcher started", metadata: ["strategy": "\(collection.strategy.rawValue)"])
        defer {
            state.stream = nil
            telemetry.setStreamOpen(ns, false)
            if let lease {
                lease.release(redis)
                telemetry.setLeader(ns, until: 0)
            }
            redis.close()
            logger.info("watcher stopped")
        }
        while !isStopping {
            do {
                if let lease, lease.isDue {
                    guard try lease.acquireOrRenew(redis) else {
                        standBy(&state)
                        continue
                    }
                    telemetry.setLeader(ns, until: lease.validUntil)
                }
                if state.stream == nil {
                    try open(&state)
                }
                try pump(&state)
                state.backoff.reset()
            } catch let error as HistoryLostFailure {
                return error
            } catch let error as RedisError where error.serverCode == "FENCED" {
                logger.warning("lost the collection lease to another instance; standing by")
                lease?.lost()
                standBy(&state)
            } catch {
                recover(from: error, &state)
            }
        }
        return nil
    }

    /// Not the leader: close the stream and wait a little before trying to claim the lease again.
    private func standBy(_ state: inout LoopState) {
        if state.stream != nil {
            state.stream = nil
            telemetry.setStreamOpen(ns, false)
        }
        telemetry.setLeader(ns, until: 0)
        pause(standbyPoll)
    }

    /// Closes the stream and waits out a backoff; the next pass reopens from the stored checkpoint.
    private func recover(from error: Error, _ state: inout LoopState) {
        state.stream = nil
        telemetry.setStreamOpen(ns, false)
        let reason: String
        switch error {
        case let error as MongoError:
            reason = error.kind == .authentication ? "auth" : "mongodb"
            telemetry.error(ns, kind: "stream")
        case let error as RedisError:
            reason = error.kind == .authentication ? "auth" : "redis"
            telemetry.error(ns, kind: "redis")
        default:
            reason = "other"
            telemetry.error(ns, kind: "other")
        }
        let delay = state.backoff.nextDelay()
        logger.warning("\(error); reconnecting in \(String(format: "%.2f", delay)) s",
                       metadata: ["attempt": "\(state.backoff.attempts)", "reason": "\(reason)"])
        telemetry.streamRestarted(ns, reason: reason)
        pause(delay)
    }

    private var streamOptions: ChangeStreamOptions {
        ChangeStreamOptions(fullDocument: collection.strategy == .invalidate ? nil : "updateLookup",
                            batchSize: Int32(settings.maxBatchEvents), maxAwaitTimeMS: settings.maxAwaitTimeMS)
    }

    /// Opens the stream from the stored checkpoint; without one (or when the server no longer has its history)
    /// opens from now and removes every cached key of the collection, since changes may have been missed.
    private func open(_ state: inout LoopState) throws {
        let checkpoint = try applier.loadCheckpoint()
        var options = streamOptions
        checkpoint?.apply(to: &options)
        do {
            state.stream = try ChangeStream(pool: pool, namespace: namespace, options: options)
        } catch let error as MongoError where checkpoint != nil && (error.kind == .historyLost || error.kind == .invalidated) {
            try historyLost(error, &state)
            return
        }
        telemetry.setStreamOpen(ns, true)
        if let checkpoint {
            telemetry.streamRestarted(ns, reason: "open")
            if case .resumeAfter(let token) = checkpoint { state.lastCheckpointToken = token }
            logger.info("change stream opened from the stored checkpoint")
        } else {
            try resync(reason: "no_checkpoint", &state,
                       message: "no checkpoint stored; watching from now")
        }
    }

    /// The server no longer has the history our token needs: flush and restart from now, or fail.
    private func historyLost(_ error: MongoError, _ state: inout LoopState) throws {
        telemetry.error(ns, kind: "history_lost")
        guard collection.onHistoryLost == .flush else {
            telemetry.resynced(ns, reason: "history_lost")
            throw HistoryLostFailure(description:
                "collection \(ns): resume token is older than the oplog (\(error.message), code \(error.code)); "
                + "onHistoryLost is fail, so cachesync stops. Set onHistoryLost: flush to flush the collection's keys and continue")
        }
        state.stream = try ChangeStream(pool: pool, namespace: namespace, options: streamOptions)
        telemetry.setStreamOpen(ns, true)
        telemetry.streamRestarted(ns, reason: "history_lost")
        try resync(reason: "history_lost", &state,
                   message: "resume token is older than the oplog (\(error.message), code \(error.code))")
    }

    /// Removes every key of the collection and checkpoints the new stream's position.
    private func resync(reason: String, _ state: inout LoopState, message: String) throws {
        let pattern = CacheKey.collectionPattern(collection: collection, keyPrefix: keyPrefix)
        let removed = try applier.flush(pattern: pattern, fence: lease?.held)
        let change: BatchApplier.CheckpointChange = state.stream?.resumeToken.map { .set(.resumeAfter($0)) } ?? .delete
        try applier.apply([], checkpoint: change, events: 0, fence: lease?.held)
        if case .set(.resumeAfter(let token)) = change { state.lastCheckpointToken = token }
        telemetry.resynced(ns, reason: reason)
        logger.warning("collection \(ns): \(message); flushed \(removed) keys and restarted from now",
                       metadata: ["reason": "\(reason)", "flushed": "\(removed)"])
    }

    /// Reads one batch (until it is full, its window ends, the stream is idle, or a collection-level event),
    /// then applies it.
    private func pump(_ state: inout LoopState) throws {
        guard let stream = state.stream else { return }
        var raw: [BSONDocument] = []
        var bytes = 0
        let started = Date()
        while true {
            let next: BSONDocument?
            do {
                next = try stream.next()
            } catch {
                // The events read before the error are valid and in order: apply and checkpoint them first, so
                // the stream reopens after them instead of from an older checkpoint.
                if !raw.isEmpty { try process(raw, &state) }
                throw error
            }
            guard let event = next else { break }
            raw.append(event)
            bytes += stream.lastEventByteCount
            if case .string(let type)? = event["operationType"], Self.collectionLevel.contains(type) { break }
            if raw.count >= settings.maxBatchEvents || bytes >= settings.maxBatchBytes
                || Date().timeIntervalSince(started) >= settings.batchWindow { break }
        }
        if raw.isEmpty {
            try saveIdleCheckpoint(stream, &state)
            pause(settings.idleSleep)
            return
        }
        if settings.testApplyDelay > 0 { Thread.sleep(forTimeInterval: settings.testApplyDelay) }
        try process(raw, &state)
    }

    private static let collectionLevel: Set<String> = ["drop", "rename", "dropDatabase", "invalidate"]

    /// Saves the idle stream's newer resume token (`postBatchResumeToken`) now and then, so a quiet collection's
    /// checkpoint stays within the server's history.
    private func saveIdleCheckpoint(_ stream: ChangeStream, _ state: inout LoopState) throws {
        guard Date().timeIntervalSince(state.lastIdleSave) >= settings.idleCheckpointInterval else { return }
        state.lastIdleSave = Date()
        guard let token = stream.resumeToken, token != state.lastCheckpointToken else { return }
        try applier.apply([], checkpoint: .set(.resumeAfter(token)), events: 0, fence: lease?.held)
        state.lastCheckpointToken = token
    }

    /// Decodes the raw events and applies them in order: document events in atomic batches, collection-level
    /// events one by one.
    private func process(_ raw: [BSONDocument], _ state: inout LoopState) throws {
        var pending: [(event: ChangeEvent?, token: BSONDocument?)] = []
        for document in raw {
            let token: BSONDocument? = if case .document(let t)? = document["_id"] { t } else { nil }
            let event: ChangeEvent
            do {
                event = try ChangeEvent(bson: document)
            } catch {
                telemetry.eventReceived(ns, operation: "undecodable")
                telemetry.error(ns, kind: "decode")
                logger.error("skipping an event that cannot be decoded: \(error)",
                             metadata: ["event": "\(ExtendedJSON.relaxed(document, maxBytes: 2048) ?? "(too large to log)")"])
                pending.append((nil, token))
                continue
            }
            telemetry.eventReceived(ns, operation: event.operationType.description)
            switch event.operationType {
            case .insert, .update, .replace, .delete:
                pending.append((event, token))
            case .unknown(let name):
                logger.notice("ignoring an event of unknown type \(name)")
                pending.append((nil, token))
            case .drop, .rename, .dropDatabase:
                try applyPending(&pending, &state)
                try flushForCollectionEvent(event, &state)
            case .invalidate:
                try applyPending(&pending, &state)
                try applier.apply([], checkpoint: .set(.startAfter(event.resumeToken)), events: 1, fence: lease?.held)
                state.lastCheckpointToken = nil
                state.stream = nil
                telemetry.setStreamOpen(ns, false)
                telemetry.streamRestarted(ns, reason: "invalidate")
                logger.notice("change stream invalidated; reopening with startAfter")
                return
            }
        }
        try applyPending(&pending, &state)
    }

    /// Drop, rename or dropDatabase: every key of the collection goes, then the stream continues (the server
    /// follows with an `invalidate`, which reopens it).
    private func flushForCollectionEvent(_ event: ChangeEvent, _ state: inout LoopState) throws {
        let ops = Strategy.plan(event: event, collection: collection, keyPrefix: keyPrefix, accessCount: 0)
        var removed = 0
        for case .flushCollection(_, let pattern, let reason) in ops {
            removed += try applier.flush(pattern: pattern, fence: lease?.held)
            telemetry.resynced(ns, reason: reason.rawValue)
        }
        try applier.apply([], checkpoint: .set(.resumeAfter(event.resumeToken)), events: 1, fence: lease?.held)
        state.lastCheckpointToken = event.resumeToken
        logger.warning("collection \(ns): \(event.operationType) event; flushed \(removed) keys")
    }

    /// Plans and applies the pending document events with the last one's token, in one atomic script.
    private func applyPending(_ pending: inout [(event: ChangeEvent?, token: BSONDocument?)], _ state: inout LoopState) throws {
        guard !pending.isEmpty else { return }
        defer { pending.removeAll() }
        let started = Date()
        let events = pending.compactMap(\.event)
        let countKeys = events.map { event -> String? in
            guard Strategy.needsAccessCount(event: event, collection: collection), let id = event.documentID else { return nil }
            return CacheKey(collection: collection, keyPrefix: keyPrefix, id: id).accessCountKey
        }
        let counts = try applier.accessCounts(countKeys.compactMap { $0 })
        var countIterator = counts.makeIterator()
        var ops: [CacheOp] = []
        for (event, countKey) in zip(events, countKeys) {
            let count = countKey == nil ? 0 : (countIterator.next() ?? 0)
            let planned = Strategy.plan(event: event, collection: collection, keyPrefix: keyPrefix, accessCount: count)
            if planned.isEmpty, event.documentID == nil {
                telemetry.error(ns, kind: "no_document_key")
                logger.error("skipping a \(event.operationType) event without documentKey._id")
            }
            ops += planned
        }
        let token = pending.last(where: { $0.token != nil })?.token
        let change: BatchApplier.CheckpointChange = token.map { .set(.resumeAfter($0)) } ?? .keep
        try applier.apply(ops, checkpoint: change, events: pending.count, fence: lease?.held)
        if let token { state.lastCheckpointToken = token }
        for action in ["set", "delete", "skip"] {
            telemetry.cacheWrites(ns, action: action, count: ops.filter { $0.metricAction == action }.count)
        }
        for case .delete(_, .tooLarge) in ops {
            telemetry.error(ns, kind: "too_large")
        }
        telemetry.batchApplied(ns, seconds: Date().timeIntervalSince(started), eventTime: events.last?.eventTimeSeconds)
    }
}

