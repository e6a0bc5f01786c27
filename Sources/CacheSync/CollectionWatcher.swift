import BSONModel
import CacheSyncCore
import Foundation
import Logging
import MongoBridge
import RedisBridge

/// Watches one collection on its own thread and applies its changes to Redis, in stream order.
///
/// It performs what its `WatcherStateMachine` decides (docs/ARCHITECTURE.md §10): claim the lease, open the stream
/// from the checkpoint or from now, resync, read and apply a batch, stand by, back off. It classifies the errors it
/// meets for the machine and keeps the stream, the lease and the metrics; the collection's checkpoint and batch in
/// flight belong to its `ChangePipeline`. Only lost history under `onHistoryLost: fail` ends it with an error.
final class CollectionWatcher: @unchecked Sendable {
    /// Tuning knobs.
    struct Settings: Sendable {
        /// How batches are gathered.
        var limits = ChangePipeline.Limits()
        /// How an idle stream is polled and checkpointed.
        var idle = WatcherStateMachine.IdleTimings()
        /// Events the server returns per getMore, at most: several applied batches, so that under load most
        /// batches come from libmongoc's buffer instead of a round trip.
        var streamBatchSize: Int32 = 1024
        /// How long the server may hold an empty getMore.
        var maxAwaitTimeMS: Int64 = 100
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
    private let redis: any RedisClient
    /// Spreads the leases over the live replicas; `nil` without leases.
    private let balancer: LeaseBalancer?
    private let pipeline: ChangePipeline
    /// The collection's warm-up, when `warmup` is enabled.
    private let warmup: CollectionWarmup?
    private let lease: LeaderLease?
    private let telemetry: Telemetry
    private let logger: Logger
    private let settings: Settings
    private let machineSettings: WatcherStateMachine.Settings

    private let condition = NSCondition()
    private var stopRequested = false

    /// A watcher for one collection; `start` runs it.
    init(collection: CollectionConfig, config: CacheSyncConfig, instanceId: String, pool: MongoClientPool,
         telemetry: Telemetry, logger: Logger, settings: Settings = Settings(), balancer: LeaseBalancer? = nil) {
        self.balancer = balancer
        self.collection = collection
        namespace = MongoNamespace(database: collection.database, collection: collection.collection)
        ns = collection.namespace
        keyPrefix = config.redis.keyPrefix
        self.pool = pool
        redis = config.redisConnection(telemetry: telemetry)
        let keys = config.syncKeys(collection)
        let lease = config.lease.enabled ? LeaderLease(keys: keys, instanceId: instanceId, ttl: config.lease.ttlSeconds) : nil
        self.lease = lease
        self.telemetry = telemetry
        var logger = logger
        logger[metadataKey: "collection"] = "\(collection.namespace)"
        self.logger = logger
        pipeline = ChangePipeline(collection: collection, config: config, redis: redis, telemetry: telemetry,
                                  logger: logger, limits: settings.limits)
        pipeline.fence = { lease?.held }
        warmup = collection.warmup.enabled
            ? CollectionWarmup(collection: collection, keys: config.keyLayout(collection), pool: pool, telemetry: telemetry,
                               logger: logger)
            : nil
        self.settings = settings
        // A standby tries to claim the lease five times per lease time, at least once a second.
        machineSettings = WatcherStateMachine.Settings(leased: lease != nil, onHistoryLost: collection.onHistoryLost,
                                                       standbyPoll: min(1, config.lease.ttlSeconds / 5),
                                                       idle: settings.idle)
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

    /// Seconds on a clock that never goes back, for the machine's idle timings.
    private static var now: Double { ProcessInfo.processInfo.systemUptime }

    /// Sleeps `seconds`, waking early when a stop is requested.
    private func pause(_ seconds: Double) {
        condition.lock()
        let until = Date().addingTimeInterval(seconds)
        while !stopRequested, condition.wait(until: until) {}
        condition.unlock()
    }

    // MARK: - The loop

    /// What the loop holds between actions.
    private struct LoopState {
        var machine: WatcherStateMachine
        var stream: ChangeStream?
        /// The error that lost the stream's history, for the resync's log line.
        var historyLost: MongoError?
        /// The error the last failed action threw, for the back-off's log line.
        var failure: Error?
        /// The lease value of another instance with this id that was last logged (logged once per value).
        var reportedDuplicate: String?
        /// After an event over 16 MiB (10334): the stream is opened without documents (no lookup, `fullDocument`,
        /// `fullDocumentBeforeChange` and `updateDescription` projected away), so every event deletes its key, until
        /// it catches up with the server; then it reopens as configured.
        var slimEvents = false
        /// The reopen after catching up in slim mode is under way (for its log line).
        var leavingSlimEvents = false
        /// After an event over 16 MiB on a server that splits them (7.0, 6.0.9+): the stream ends its pipeline
        /// with `$changeStreamSplitLargeEvent` from then on, and the pipeline reassembles the fragments.
        var splitEvents = false
    }

    /// The stored checkpoint's history is gone: the error the stream could not be opened with.
    private struct StoredHistoryLost: Error {
        let error: MongoError
    }

    private func run() -> Error? {
        var state = LoopState(machine: WatcherStateMachine(settings: machineSettings, now: Self.now))
        logger.info("watcher started", metadata: ["strategy": "\(collection.strategy.rawValue)"])
        defer {
            do {
                try pipeline.finishInFlight()
            } catch {
                pipeline.abandonInFlight()
                logger.warning("the last batch was not confirmed before stopping: \(error)")
            }
            closeStream(&state)
            if let lease {
                lease.release(redis)
                balancer?.noteLeads(ns, false)
                telemetry.setLeader(ns, until: 0)
            }
            redis.close()
            logger.info("watcher stopped")
        }
        while !isStopping {
            var next: WatcherStateMachine.Action? = state.machine.nextPass(leaseDue: lease?.isDue ?? false)
            while let action = next {
                do {
                    next = try perform(action, &state)
                } catch let error as HistoryLostFailure {
                    return error
                } catch {
                    state.failure = error
                    next = state.machine.failed(classify(error))
                }
            }
        }
        return nil
    }

    /// Performs one action; returns the machine's next one, or `nil` when the pass is over.
    private func perform(_ action: WatcherStateMachine.Action, _ state: inout LoopState) throws -> WatcherStateMachine.Action? {
        switch action {
        case .claimLease:
            var held = true
            if let lease {
                try balancer?.heartbeatIfDue(redis)
                if lease.held == nil, let balancer, !balancer.mayClaim(ns, free: try lease.isOpen(redis)) {
                    held = false
                } else {
                    held = try lease.acquireOrRenew(redis)
                }
                if held, let balancer, balancer.shouldHandOver(ns, poll: machineSettings.standbyPoll) {
                    // More than this instance's share: hand the collection to a replica below its share.
                    try pipeline.finishInFlight()
                    lease.release(redis)
                    held = false
                    logger.notice("handing the collection lease over: this instance leads more than its share",
                                  metadata: ["share": "\(balancer.share)", "instances": "\(balancer.liveInstances)"])
                }
                balancer?.noteLeads(ns, held)
            }
            if held, let lease { telemetry.setLeader(ns, until: lease.validUntil) }
            if let duplicate = lease?.duplicate, duplicate != state.reportedDuplicate {
                state.reportedDuplicate = duplicate
                telemetry.error(ns, kind: "duplicate_instance_id")
                logger.error("""
                    another live instance uses this instance's id: the lease holds \(duplicate), an epoch this one never                     had. Give every replica its own CACHESYNC_INSTANCE_ID (the pod name); standing by until the lease is free
                    """)
            }
            return state.machine.leaseClaimed(held)
        case .openStream(let from):
            let fromCheckpoint = try open(from, &state)
            if fromCheckpoint { try warmup?.load(pipeline) }
            return state.machine.streamOpened(fromCheckpoint: fromCheckpoint)
        case .resync(let reason):
            try resync(reason, &state)
            return state.machine.resynced()
        case .pump:
            guard let stream = state.stream else { preconditionFailure("pump without a stream") }
            var outcome: WatcherStateMachine.PumpOutcome = switch try pipeline.pump(stream) {
            case .applied: .applied
            case .reopen: .invalidated
            case .idle(let waited): .idle(waited: waited)
            }
            if case .idle = outcome, !state.slimEvents, let warmup,
               try warmup.step(pipeline, idleToken: stream.resumeToken) {
                // A warm-up chunk was written or read: poll again at once, as after a batch.
                outcome = .applied
            }
            if case .idle = outcome, state.slimEvents {
                // Caught up past the oversized event: reopen from the checkpoint with documents again, the way an
                // invalidate reopens.
                state.slimEvents = false
                state.leavingSlimEvents = true
                outcome = .invalidated
            }
            return state.machine.pumped(outcome, now: Self.now)
        case .saveIdleCheckpoint:
            guard let stream = state.stream else { preconditionFailure("an idle checkpoint without a stream") }
            try pipeline.saveIdleCheckpoint(stream)
            return state.machine.idleCheckpointSaved(now: Self.now)
        case .endPass(.afterBatch):
            HeapTrimmer.shared.afterBatch()
        case .endPass(.idle(let wentIdle, let sleep)):
            if wentIdle { HeapTrimmer.shared.wentIdle() }
            if sleep > 0 { pause(sleep) }
        case .closeInvalidatedStream:
            closeStream(&state)
            if state.leavingSlimEvents {
                state.leavingSlimEvents = false
                telemetry.streamRestarted(ns, reason: "event_too_large")
                logger.notice("caught up past the event over 16 MiB; reopening the change stream with documents")
            } else {
                telemetry.streamRestarted(ns, reason: "invalidate")
                logger.notice("change stream invalidated; reopening with startAfter")
            }
        case .standBy(let seconds, var leaseLost):
            if !leaseLost {
                // A batch still in flight may have been fenced: on a cluster the fences are checked when its replies
                // are read, which this lease check came before.
                do { try pipeline.finishInFlight() } catch is FencedWriteError { leaseLost = true } catch {}
            }
            if leaseLost {
                logger.warning("lost the collection lease to another instance; standing by")
                lease?.lost()
            }
            pipeline.abandonInFlight()
            closeStream(&state)
            telemetry.setLeader(ns, until: 0)
            // Another instance's lease that runs out before the next poll is claimed right after it does.
            pause(min(seconds, (lease?.expiresIn).map { $0 + 0.02 } ?? seconds))
        case .backOff(let failure, let delay, let attempt):
            pipeline.abandonInFlight()
            closeStream(&state)
            if let error = state.failure as? MongoError, error.kind == .eventTooLarge, !state.slimEvents {
                telemetry.error(ns, kind: "event_too_large")
                if !state.splitEvents, serverSplitsLargeEvents() {
                    state.splitEvents = true
                    pipeline.expectsSplitEvents = true
                    logger.error("an event is over MongoDB's 16 MiB limit (code 10334); reopening with $changeStreamSplitLargeEvent, whose fragments are put back together")
                } else {
                    // Too large even when split (one field over 16 MiB), or a server that cannot split.
                    state.slimEvents = true
                    logger.error("an event is over MongoDB's 16 MiB limit (code 10334); reopening without documents, so each event deletes its key, until the stream catches up")
                }
            }
            // After a Redis failure the next pass starts on a fresh connection (behind Sentinel: to the master the
            // sentinels name then).
            if case .redis = failure { redis.close() }
            telemetry.error(ns, kind: failure.errorKind)
            logger.warning("\(state.failure.map { "\($0)" } ?? "failure"); reconnecting in \(String(format: "%.2f", delay)) s",
                           metadata: ["attempt": "\(attempt)", "reason": "\(failure.restartReason)"])
            telemetry.streamRestarted(ns, reason: failure.restartReason)
            pause(delay)
        case .stopWithHistoryLost:
            telemetry.resynced(ns, reason: WatcherStateMachine.ResyncReason.historyLost.rawValue)
            throw HistoryLostFailure(description:
                "collection \(ns): \(Self.historyLostText(state)); onHistoryLost is fail, so "
                + "cachesync stops. Set onHistoryLost: flush to flush the collection's keys and continue")
        }
        return nil
    }

    /// The machine's view of an error.
    private func classify(_ error: Error) -> WatcherStateMachine.Failure {
        switch error {
        case is FencedWriteError:
            return .fenced
        case is StoredHistoryLost:
            telemetry.error(ns, kind: "history_lost")
            return .historyLost
        case let error as MongoError:
            return .mongodb(authentication: error.kind == .authentication)
        case let error as RedisError:
            return .redis(authentication: error.kind == .authentication)
        default:
            return .other
        }
    }

    /// The stream's options: `slim` without any document in the events, `split` with events over 16 MiB split
    /// into fragments (its stage must be the pipeline's last).
    private func streamOptions(slim: Bool, split: Bool) -> ChangeStreamOptions {
        var options = ChangeStreamOptions(fullDocument: collection.strategy == .invalidate || slim ? nil : "updateLookup",
                                          batchSize: settings.streamBatchSize, maxAwaitTimeMS: settings.maxAwaitTimeMS)
        if slim {
            options.pipeline.append(["$project": .document(["fullDocument": .int32(0), "fullDocumentBeforeChange": .int32(0),
                                                             "updateDescription": .int32(0)])])
        } else if options.fullDocument != nil, collection.filter == nil, let projection = collection.projection,
                  let stage = projection.changeStreamStage,
                  !collection.indexes.contains(where: { $0.fieldPaths.contains(where: projection.leavesOut) }) {
            // The server leaves the excluded fields out of the events (fewer bytes, fewer events over 16 MiB);
            // cachesync projects again, which also covers inclusions. Not with a filter or a secondary key that may
            // read them.
            options.pipeline.append(stage)
        }
        if collection.preImages, !collection.indexes.isEmpty, !slim {
            // The old secondary keys come from the pre-image; null when the server has none for an event.
            options.fullDocumentBeforeChange = "whenAvailable"
        }
        if split {
            options.pipeline.append(["$changeStreamSplitLargeEvent": .document([:])])
        }
        return options
    }

    /// Whether the server splits large change events (`$changeStreamSplitLargeEvent`: MongoDB 7.0, and 6.0.9 on),
    /// from `buildInfo`; `false` when it cannot tell.
    private func serverSplitsLargeEvents() -> Bool {
        guard let reply = try? pool.runCommand(database: "admin", command: ["buildInfo": .int32(1)]),
              case .array(let parts)? = reply["versionArray"], parts.count >= 3 else { return false }
        let version = parts.prefix(3).map { part -> Int in
            switch part {
            case .int32(let n): Int(n)
            case .int64(let n): Int(n)
            default: 0
            }
        }
        return version[0] > 6 || (version[0] == 6 && (version[1] > 0 || version[2] >= 9))
    }

    /// Opens the stream; returns whether it continues from a stored checkpoint. From `.storedCheckpoint` without
    /// one it opens from now. A stored checkpoint whose history the server no longer has throws
    /// `StoredHistoryLost`.
    private func open(_ from: WatcherStateMachine.OpenFrom, _ state: inout LoopState) throws -> Bool {
        var options = streamOptions(slim: state.slimEvents, split: state.splitEvents)
        let checkpoint = from == .storedCheckpoint ? try pipeline.loadCheckpoint() : nil
        checkpoint?.apply(to: &options)
        do {
            state.stream = try ChangeStream(pool: pool, namespace: namespace, options: options)
        } catch let error as MongoError where checkpoint != nil && (error.kind == .historyLost || error.kind == .invalidated) {
            state.historyLost = error
            throw StoredHistoryLost(error: error)
        }
        telemetry.setStreamOpen(ns, true)
        if checkpoint != nil {
            telemetry.streamRestarted(ns, reason: "open")
            logger.info("change stream opened from the stored checkpoint")
        } else if from == .now {
            telemetry.streamRestarted(ns, reason: WatcherStateMachine.ResyncReason.historyLost.rawValue)
        }
        return checkpoint != nil
    }

    /// Removes every key of the collection and checkpoints the new stream's position.
    private func resync(_ reason: WatcherStateMachine.ResyncReason, _ state: inout LoopState) throws {
        let pattern = CacheKey.collectionPattern(collection: collection, keyPrefix: keyPrefix)
        let removed = try pipeline.resync(pattern: pattern, position: state.stream?.resumeToken,
                                          warmup: warmup == nil ? .delete : .set(WarmupPosition.start.storedText))
        telemetry.resynced(ns, reason: reason.rawValue)
        let message = switch reason {
        case .noCheckpoint: "no checkpoint stored; watching from now"
        case .historyLost: Self.historyLostText(state)
        }
        logger.warning("collection \(ns): \(message); flushed \(removed) keys and restarted from now",
                       metadata: ["reason": "\(reason.rawValue)", "flushed": "\(removed)"])
        warmup?.began()
    }

    /// What the server said when the stored checkpoint's history was gone.
    private static func historyLostText(_ state: LoopState) -> String {
        "resume token is older than the oplog (\(state.historyLost.map { "\($0.message), code \($0.code)" } ?? "history lost"))"
    }

    /// Closes the stream, if open.
    private func closeStream(_ state: inout LoopState) {
        warmup?.abandonChunk(pipeline)
        guard state.stream != nil else { return }
        state.stream = nil
        telemetry.setStreamOpen(ns, false)
    }
}
