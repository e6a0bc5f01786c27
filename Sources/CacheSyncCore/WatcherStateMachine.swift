/// The decisions of one collection's watcher loop, as a pure state machine: the watcher reports what happened and
/// performs the action it gets back. No I/O and no clock: times come in as arguments.
///
/// A pass of the loop starts with `nextPass`: claim or renew the lease when it is due, open the stream when it is
/// closed, then read and apply one batch. Opening goes from the stored checkpoint; without one the stream opens
/// from now and the collection is resynced (its keys flushed, since changes may have been missed). History the
/// server no longer has flushes and reopens from now, or stops the watcher, as `onHistoryLost` says. A fenced write
/// or an unclaimed lease stands by; any other failure closes the stream and backs off, and the next pass reopens
/// from the checkpoint. An `invalidate` closes the stream, which reopens from its `startAfter` checkpoint.
/// (Drop, rename and dropDatabase are planned by `Strategy` as a flush, which the pipeline applies in stream order.)
public struct WatcherStateMachine: Sendable {
    /// How an idle stream is polled and checkpointed.
    public struct IdleTimings: Sendable, Equatable {
        /// Seconds between saves of an idle stream's newer resume token.
        public var checkpointInterval = 1.0
        /// An empty read that took at least this long was held by the server: no sleep follows it.
        public var heldReadSeconds = 0.02
        /// The shortest sleep after an empty read the server answered at once (nx-27017 ignores maxAwaitTimeMS).
        public var minSleep = 0.001
        /// The longest sleep between empty reads, which bounds an idle stream's polling.
        public var maxSleep = 0.05
        /// The sleep's share of the time the stream has been quiet: a stream that was just busy is polled again
        /// soon, so a pause in a burst delays it by a tenth at most; one that stays quiet less and less often.
        public var sleepShare = 0.1

        /// The defaults.
        public init() {}

        /// The defaults for a process that polls `streams` streams: the longest sleep grows with them (3 ms a
        /// stream, at least 50 ms), so a process's idle polls of a server that answers empty reads at once stay
        /// near 330 a second however many collections it watches. A server that holds empty reads (MongoDB,
        /// `maxAwaitTimeMS`) is never slept after.
        public init(streams: Int) {
            maxSleep = max(0.05, 0.003 * Double(streams))
        }

        /// The sleep after an empty read that the server answered at once, `quiet` seconds after events last came.
        public func sleep(quietFor quiet: Double) -> Double {
            min(maxSleep, max(minSleep, quiet * sleepShare))
        }
    }

    /// What the machine needs to know of its collection and loop.
    public struct Settings: Sendable, Equatable {
        /// Whether the collection is applied under a lease (one leader among replicas).
        public var leased: Bool
        /// What lost history does.
        public var onHistoryLost: HistoryLostPolicy
        /// Seconds a standby waits before trying the lease again.
        public var standbyPoll: Double
        /// How an idle stream is polled and checkpointed.
        public var idle: IdleTimings

        /// The settings of a loop.
        public init(leased: Bool, onHistoryLost: HistoryLostPolicy, standbyPoll: Double, idle: IdleTimings = IdleTimings()) {
            self.leased = leased
            self.onHistoryLost = onHistoryLost
            self.standbyPoll = standbyPoll
            self.idle = idle
        }
    }

    /// Where a stream is opened from.
    public enum OpenFrom: Equatable, Sendable {
        /// The stored checkpoint; from now when none is stored.
        case storedCheckpoint
        /// Now, ignoring the stored checkpoint (its history is lost).
        case now
    }

    /// Why every key of the collection is removed.
    public enum ResyncReason: String, Equatable, Sendable {
        /// No checkpoint was stored: changes before now are unknown.
        case noCheckpoint = "no_checkpoint"
        /// The server no longer has the history the stored checkpoint needs.
        case historyLost = "history_lost"
    }

    /// What went wrong, as the watcher classifies it.
    public enum Failure: Equatable, Sendable {
        /// A write was refused: another instance holds the collection's lease.
        case fenced
        /// The stream could not be opened from the stored checkpoint: its history is gone.
        case historyLost
        /// MongoDB failed (or refused the credentials).
        case mongodb(authentication: Bool)
        /// Redis failed (or refused the credentials).
        case redis(authentication: Bool)
        /// Anything else.
        case other

        /// The `reason` label of the stream restart it causes.
        public var restartReason: String {
            switch self {
            case .mongodb(authentication: true), .redis(authentication: true): "auth"
            case .mongodb, .historyLost: "mongodb"
            case .redis, .fenced: "redis"
            case .other: "other"
            }
        }

        /// The `kind` label of the error it counts.
        public var errorKind: String {
            switch self {
            case .mongodb, .historyLost: "stream"
            case .redis, .fenced: "redis"
            case .other: "other"
            }
        }
    }

    /// How a pass that read from the stream ends.
    public enum Rest: Equatable, Sendable {
        /// A batch was applied: read again at once.
        case afterBatch
        /// The read was empty. `wentIdle`: the one before was not; `sleep`: seconds to wait (0 when the server
        /// held the read).
        case idle(wentIdle: Bool, sleep: Double)
    }

    /// What the watcher does next.
    public enum Action: Equatable, Sendable {
        /// Claim the lease, or renew it; report `leaseClaimed(_:)` or `failed(_:)`.
        case claimLease
        /// Open the change stream; report `streamOpened(fromCheckpoint:)` or `failed(_:)`.
        case openStream(OpenFrom)
        /// Remove every cached key of the collection and checkpoint the open stream's position; report
        /// `resynced()` or `failed(_:)`.
        case resync(ResyncReason)
        /// Read and apply one batch; report `pumped(_:now:)` or `failed(_:)`.
        case pump
        /// Save the idle stream's newer resume token; report `idleCheckpointSaved(now:)` or `failed(_:)`.
        case saveIdleCheckpoint
        /// The pass is over.
        case endPass(Rest)
        /// The stream was invalidated and its `startAfter` checkpoint stored: close it; the next pass reopens it.
        case closeInvalidatedStream
        /// Not the leader: drop the batch in flight, close the stream and wait `seconds` before trying the lease
        /// again. `leaseLost`: a write was fenced, so the lease is another instance's now.
        case standBy(seconds: Double, leaseLost: Bool)
        /// Drop the batch in flight, close the stream, count `failure` and wait `delay` seconds (the `attempt`th
        /// failure in a row); the next pass reopens from the stored checkpoint.
        case backOff(Failure, delay: Double, attempt: Int)
        /// History is lost and the collection's policy is `fail`: end the watcher with an error.
        case stopWithHistoryLost
    }

    /// Where the loop is.
    public enum State: Equatable, Sendable {
        /// No stream; the next pass opens one.
        case closed
        /// An `openStream` action is being performed.
        case opening(OpenFrom)
        /// The stream is open and the collection's keys are being removed.
        case resyncing(ResyncReason)
        /// The stream is open.
        case open
        /// History was lost under `onHistoryLost: fail`; the watcher ends.
        case stopped
    }

    /// The settings it decides with.
    public let settings: Settings
    /// Where the loop is.
    public private(set) var state: State = .closed
    /// Failures since the last pass that read from the stream.
    public private(set) var backoff = Backoff(base: 0.1, cap: 10)
    /// Whether the last read was empty.
    private var idle = false
    /// When (seconds, any epoch) events last came, which sets the next idle sleep.
    private var lastEvents: Double
    /// When an idle checkpoint was last saved.
    private var lastIdleSave = -Double.infinity

    /// A machine whose stream is closed; `now` is when the loop starts.
    public init(settings: Settings, now: Double) {
        self.settings = settings
        lastEvents = now
    }

    /// The first action of a pass. `leaseDue`: the lease is not held, or a third of its time has passed.
    public mutating func nextPass(leaseDue: Bool) -> Action {
        if state == .stopped { return .stopWithHistoryLost }
        if settings.leased && leaseDue { return .claimLease }
        return afterLease()
    }

    /// The lease was claimed or renewed (`held`), or another instance holds it.
    public mutating func leaseClaimed(_ held: Bool) -> Action {
        guard held else {
            state = .closed
            return .standBy(seconds: settings.standbyPoll, leaseLost: false)
        }
        return afterLease()
    }

    private mutating func afterLease() -> Action {
        switch state {
        case .closed:
            state = .opening(.storedCheckpoint)
            return .openStream(.storedCheckpoint)
        case .open:
            return .pump
        case .stopped:
            return .stopWithHistoryLost
        case .opening, .resyncing:
            preconditionFailure("a pass started while \(state)")
        }
    }

    /// The stream opened; `fromCheckpoint`: it continues from a stored checkpoint.
    public mutating func streamOpened(fromCheckpoint: Bool) -> Action {
        guard case .opening(let from) = state else { preconditionFailure("a stream opened while \(state)") }
        if fromCheckpoint {
            precondition(from == .storedCheckpoint, "a stream opened from now cannot continue from a checkpoint")
            state = .open
            return .pump
        }
        let reason: ResyncReason = from == .now ? .historyLost : .noCheckpoint
        state = .resyncing(reason)
        return .resync(reason)
    }

    /// The collection's keys were removed and the stream's position checkpointed.
    public mutating func resynced() -> Action {
        guard case .resyncing = state else { preconditionFailure("resynced while \(state)") }
        state = .open
        return .pump
    }

    /// What one read-and-apply did, as the pipeline reports it.
    public enum PumpOutcome: Equatable, Sendable {
        /// A batch was applied.
        case applied
        /// The stream was invalidated (its `startAfter` checkpoint is stored).
        case invalidated
        /// The source had nothing; the empty read took `waited` seconds.
        case idle(waited: Double)
    }

    /// One batch was read (and applied), at `now`.
    public mutating func pumped(_ outcome: PumpOutcome, now: Double) -> Action {
        precondition(state == .open, "pumped while \(state)")
        switch outcome {
        case .applied:
            backoff.reset()
            idle = false
            lastEvents = now
            return .endPass(.afterBatch)
        case .invalidated:
            backoff.reset()
            state = .closed
            return .closeInvalidatedStream
        case .idle(let waited):
            if now - lastIdleSave >= settings.idle.checkpointInterval {
                lastIdleSave = now
                pendingIdleRead = waited
                return .saveIdleCheckpoint
            }
            return rest(afterEmptyReadOf: waited, now: now)
        }
    }

    /// How long the empty read before a `saveIdleCheckpoint` took.
    private var pendingIdleRead: Double?

    /// The idle stream's resume token was saved, at `now`.
    public mutating func idleCheckpointSaved(now: Double) -> Action {
        guard let waited = pendingIdleRead else { preconditionFailure("an idle checkpoint saved unasked") }
        pendingIdleRead = nil
        return rest(afterEmptyReadOf: waited, now: now)
    }

    private mutating func rest(afterEmptyReadOf waited: Double, now: Double) -> Action {
        backoff.reset()
        let wentIdle = !idle
        idle = true
        // A server that held the empty getMore (maxAwaitTimeMS) needs no sleep; one that answered at once
        // (nx-27017) is polled again soon after a change, less often the longer it stays idle.
        let sleep = waited < settings.idle.heldReadSeconds ? settings.idle.sleep(quietFor: now - lastEvents) : 0
        return .endPass(.idle(wentIdle: wentIdle, sleep: sleep))
    }

    /// The action under way failed.
    public mutating func failed(_ failure: Failure) -> Action {
        var random = SystemRandomNumberGenerator()
        return failed(failure, using: &random)
    }

    /// `failed(_:)` with the backoff's jitter drawn from `random`.
    public mutating func failed(_ failure: Failure, using random: inout some RandomNumberGenerator) -> Action {
        pendingIdleRead = nil
        switch failure {
        case .fenced:
            state = .closed
            return .standBy(seconds: settings.standbyPoll, leaseLost: true)
        case .historyLost where state == .opening(.storedCheckpoint):
            guard settings.onHistoryLost == .flush else {
                state = .stopped
                return .stopWithHistoryLost
            }
            state = .opening(.now)
            return .openStream(.now)
        default:
            state = .closed
            let delay = backoff.nextDelay(using: &random)
            return .backOff(failure, delay: delay, attempt: backoff.attempts)
        }
    }
}
