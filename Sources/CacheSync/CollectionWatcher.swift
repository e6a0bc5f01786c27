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
        /// How batches are gathered.
        var limits = ChangePipeline.Limits()
        /// The shortest sleep after an empty read that the server answered at once (nx-27017 ignores
        /// maxAwaitTimeMS). The sleep is `idleSleepShare` of the time since events last came, within
        /// `minIdleSleep…maxIdleSleep`: a stream that was just busy is polled again soon, so a pause in a burst
        /// delays it by a tenth at most; one that stays quiet is polled less and less often.
        var minIdleSleep = 0.001
        /// The longest sleep between empty reads, which bounds an idle stream's polling.
        var maxIdleSleep = 0.05
        /// The sleep's share of the time the stream has been quiet.
        var idleSleepShare = 0.1
        /// An empty read that took at least this long was held by the server: no sleep follows it.
        var heldReadSeconds = 0.02
        /// Events the server returns per getMore, at most: several applied batches, so that under load most
        /// batches come from libmongoc's buffer instead of a round trip.
        var streamBatchSize: Int32 = 1024
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

        /// The sleep after an empty read that the server answered at once, `quiet` seconds after events last came.
        func idleSleep(quietFor quiet: Double) -> Double {
            min(maxIdleSleep, max(minIdleSleep, quiet * idleSleepShare))
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
    private let pipeline: ChangePipeline
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
        let lease = config.lease.enabled ? LeaderLease(keys: keys, instanceId: instanceId, ttl: config.lease.ttlSeconds) : nil
        self.lease = lease
        self.telemetry = telemetry
        var logger = logger
        logger[metadataKey: "collection"] = "\(collection.namespace)"
        self.logger = logger
        pipeline = ChangePipeline(collection: collection, config: config, redis: redis, telemetry: telemetry,
                                  logger: logger, limits: settings.limits)
        pipeline.fence = { lease?.held }
        pipeline.testApplyDelay = settings.testApplyDelay
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
        /// Whether the last read was empty.
        var idle = false
        /// When events last came, which sets the next idle sleep.
        var lastEvents = Date()
        var lastIdleSave = Date.distantPast
    }

    private func run() -> Error? {
        var state = LoopState()
        logger.info("watcher started", metadata: ["strategy": "\(collection.strategy.rawValue)"])
        defer {
            do {
                try pipeline.finishInFlight()
            } catch {
                pipeline.abandonInFlight()
                logger.warning("the last batch was not confirmed before stopping: \(error)")
            }
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
        pipeline.abandonInFlight()
        if state.stream != nil {
            state.stream = nil
            telemetry.setStreamOpen(ns, false)
        }
        telemetry.setLeader(ns, until: 0)
        pause(standbyPoll)
    }

    /// Closes the stream and waits out a backoff; the next pass reopens from the stored checkpoint.
    private func recover(from error: Error, _ state: inout LoopState) {
        pipeline.abandonInFlight()
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
                            batchSize: settings.streamBatchSize, maxAwaitTimeMS: settings.maxAwaitTimeMS)
    }

    /// Opens the stream from the stored checkpoint; without one (or when the server no longer has its history)
    /// opens from now and removes every cached key of the collection, since changes may have been missed.
    private func open(_ state: inout LoopState) throws {
        let checkpoint = try pipeline.applier.loadCheckpoint()
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
            if case .resumeAfter(let token) = checkpoint { pipeline.lastCheckpointToken = token }
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
        let removed = try pipeline.applier.flush(pattern: pattern, fence: lease?.held)
        let change: BatchApplier.CheckpointChange = state.stream?.resumeToken.map { .set(.resumeAfter($0)) } ?? .delete
        try pipeline.applier.apply([], checkpoint: change, events: 0, fence: lease?.held)
        if case .set(.resumeAfter(let token)) = change { pipeline.lastCheckpointToken = token }
        telemetry.resynced(ns, reason: reason)
        logger.warning("collection \(ns): \(message); flushed \(removed) keys and restarted from now",
                       metadata: ["reason": "\(reason)", "flushed": "\(removed)"])
    }

    /// Reads and applies one batch; after an empty read, saves the idle checkpoint now and then and sleeps.
    private func pump(_ state: inout LoopState) throws {
        guard let stream = state.stream else { return }
        switch try pipeline.pump(stream) {
        case .applied:
            state.idle = false
            state.lastEvents = Date()
            HeapTrimmer.shared.afterBatch()
        case .reopen:
            state.stream = nil
            telemetry.setStreamOpen(ns, false)
            telemetry.streamRestarted(ns, reason: "invalidate")
            logger.notice("change stream invalidated; reopening with startAfter")
        case .idle(let waited):
            if Date().timeIntervalSince(state.lastIdleSave) >= settings.idleCheckpointInterval {
                state.lastIdleSave = Date()
                try pipeline.saveIdleCheckpoint(stream)
            }
            // A server that held the empty getMore (maxAwaitTimeMS) needs no sleep; one that answered at once
            // (nx-27017) is polled again soon after a change, less often the longer it stays idle.
            if !state.idle { HeapTrimmer.shared.wentIdle() }
            state.idle = true
            guard waited < settings.heldReadSeconds else { return }
            pause(settings.idleSleep(quietFor: Date().timeIntervalSince(state.lastEvents)))
        }
    }
}

