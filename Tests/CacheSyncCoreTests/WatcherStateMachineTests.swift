import CacheSyncCore
import Testing

/// One event reported to the machine.
enum WatcherStep: Sendable, CustomStringConvertible {
    case nextPass(leaseDue: Bool)
    case leaseClaimed(Bool)
    case streamOpened(fromCheckpoint: Bool)
    case resynced
    case pumped(WatcherStateMachine.PumpOutcome, now: Double)
    case idleCheckpointSaved(now: Double)
    case failed(WatcherStateMachine.Failure)

    var description: String {
        switch self {
        case .nextPass(let due): "nextPass(leaseDue: \(due))"
        case .leaseClaimed(let held): "leaseClaimed(\(held))"
        case .streamOpened(let fromCheckpoint): "streamOpened(fromCheckpoint: \(fromCheckpoint))"
        case .resynced: "resynced"
        case .pumped(let outcome, let now): "pumped(\(outcome), now: \(now))"
        case .idleCheckpointSaved(let now): "idleCheckpointSaved(now: \(now))"
        case .failed(let failure): "failed(\(failure))"
        }
    }

    /// Reports the step; jitter comes from a fixed source so delays repeat.
    func apply(to machine: inout WatcherStateMachine) -> WatcherStateMachine.Action {
        switch self {
        case .nextPass(let due): return machine.nextPass(leaseDue: due)
        case .leaseClaimed(let held): return machine.leaseClaimed(held)
        case .streamOpened(let fromCheckpoint): return machine.streamOpened(fromCheckpoint: fromCheckpoint)
        case .resynced: return machine.resynced()
        case .pumped(let outcome, let now): return machine.pumped(outcome, now: now)
        case .idleCheckpointSaved(let now): return machine.idleCheckpointSaved(now: now)
        case .failed(let failure):
            var random = FixedRandom()
            return machine.failed(failure, using: &random)
        }
    }
}

/// Always the middle of the range: `Double.random(in: a...b)` gives about (a + b) / 2.
struct FixedRandom: RandomNumberGenerator {
    mutating func next() -> UInt64 { UInt64.max / 2 }
}

/// One transition: the machine after `given` (from a closed stream at time 0), the event `when`, and what must come
/// of it.
struct WatcherTransition: Sendable, CustomTestStringConvertible {
    let name: String
    var leased = true
    var onHistoryLost: HistoryLostPolicy = .flush
    let given: [WatcherStep]
    let when: WatcherStep
    let then: WatcherStateMachine.Action
    let state: WatcherStateMachine.State

    var testDescription: String { name }
}

/// Steps that leave a leased machine with an open stream, after resuming from a stored checkpoint.
private let streaming: [WatcherStep] = [.nextPass(leaseDue: true), .leaseClaimed(true), .streamOpened(fromCheckpoint: true)]

@Suite("Watcher state machine: every transition")
struct WatcherStateMachineTests {
    static let standbyPoll = 0.4

    static let transitions: [WatcherTransition] = [
        // Starting a pass.
        .init(name: "a leased pass with the lease due claims it first", given: [],
              when: .nextPass(leaseDue: true), then: .claimLease, state: .closed),
        .init(name: "an unleased pass never claims a lease and opens from the stored checkpoint", leased: false, given: [],
              when: .nextPass(leaseDue: true), then: .openStream(.storedCheckpoint), state: .opening(.storedCheckpoint)),
        .init(name: "a pass with the lease not due and the stream open reads a batch", given: streaming,
              when: .nextPass(leaseDue: false), then: .pump, state: .open),
        // The lease.
        .init(name: "a claimed lease with the stream closed opens it from the stored checkpoint",
              given: [.nextPass(leaseDue: true)],
              when: .leaseClaimed(true), then: .openStream(.storedCheckpoint), state: .opening(.storedCheckpoint)),
        .init(name: "a renewed lease with the stream open reads a batch", given: streaming + [.pumped(.applied, now: 1), .nextPass(leaseDue: true)],
              when: .leaseClaimed(true), then: .pump, state: .open),
        .init(name: "a lease another instance holds stands by without a stream", given: [.nextPass(leaseDue: true)],
              when: .leaseClaimed(false), then: .standBy(seconds: standbyPoll, leaseLost: false), state: .closed),
        .init(name: "a lease lost while streaming closes the stream and stands by", given: streaming + [.nextPass(leaseDue: true)],
              when: .leaseClaimed(false), then: .standBy(seconds: standbyPoll, leaseLost: false), state: .closed),
        // Opening.
        .init(name: "a stream resumed from its checkpoint reads at once", given: [.nextPass(leaseDue: true), .leaseClaimed(true)],
              when: .streamOpened(fromCheckpoint: true), then: .pump, state: .open),
        .init(name: "a stream opened without a stored checkpoint resyncs the collection",
              given: [.nextPass(leaseDue: true), .leaseClaimed(true)],
              when: .streamOpened(fromCheckpoint: false), then: .resync(.noCheckpoint), state: .resyncing(.noCheckpoint)),
        .init(name: "lost history under onHistoryLost: flush reopens from now",
              given: [.nextPass(leaseDue: true), .leaseClaimed(true)],
              when: .failed(.historyLost), then: .openStream(.now), state: .opening(.now)),
        .init(name: "lost history under onHistoryLost: fail stops the watcher", onHistoryLost: .fail,
              given: [.nextPass(leaseDue: true), .leaseClaimed(true)],
              when: .failed(.historyLost), then: .stopWithHistoryLost, state: .stopped),
        .init(name: "a stopped machine answers every pass with the stop", onHistoryLost: .fail,
              given: [.nextPass(leaseDue: true), .leaseClaimed(true), .failed(.historyLost)],
              when: .nextPass(leaseDue: true), then: .stopWithHistoryLost, state: .stopped),
        .init(name: "a stream reopened from now after lost history resyncs for that reason",
              given: [.nextPass(leaseDue: true), .leaseClaimed(true), .failed(.historyLost)],
              when: .streamOpened(fromCheckpoint: false), then: .resync(.historyLost), state: .resyncing(.historyLost)),
        .init(name: "reopening from now can fail too: it backs off, and the next pass starts from the checkpoint again",
              given: [.nextPass(leaseDue: true), .leaseClaimed(true), .failed(.historyLost)],
              when: .failed(.mongodb(authentication: false)),
              then: .backOff(.mongodb(authentication: false), delay: 0.075, attempt: 1), state: .closed),
        .init(name: "after a resync the stream is read",
              given: [.nextPass(leaseDue: true), .leaseClaimed(true), .streamOpened(fromCheckpoint: false)],
              when: .resynced, then: .pump, state: .open),
        // Reading.
        .init(name: "an applied batch ends the pass at once", given: streaming,
              when: .pumped(.applied, now: 1), then: .endPass(.afterBatch), state: .open),
        .init(name: "an invalidated stream is closed; the next pass reopens it", given: streaming,
              when: .pumped(.invalidated, now: 1), then: .closeInvalidatedStream, state: .closed),
        .init(name: "the pass after an invalidate opens from the stored (startAfter) checkpoint",
              given: streaming + [.pumped(.invalidated, now: 1)],
              when: .nextPass(leaseDue: false), then: .openStream(.storedCheckpoint), state: .opening(.storedCheckpoint)),
        .init(name: "the first empty read saves the idle checkpoint", given: streaming,
              when: .pumped(.idle(waited: 0), now: 1), then: .saveIdleCheckpoint, state: .open),
        .init(name: "after the idle checkpoint an empty read answered at once sleeps a tenth of the quiet time",
              given: streaming + [.pumped(.idle(waited: 0), now: 0.2)],
              when: .idleCheckpointSaved(now: 0.2), then: .endPass(.idle(wentIdle: true, sleep: 0.02)), state: .open),
        .init(name: "an empty read within the checkpoint interval neither saves nor counts as newly idle",
              given: streaming + [.pumped(.idle(waited: 0), now: 0.2), .idleCheckpointSaved(now: 0.2)],
              when: .pumped(.idle(waited: 0), now: 0.5), then: .endPass(.idle(wentIdle: false, sleep: 0.05)), state: .open),
        .init(name: "an empty read the server held (maxAwaitTimeMS) sleeps not at all",
              given: streaming + [.pumped(.idle(waited: 0), now: 0.2), .idleCheckpointSaved(now: 0.2)],
              when: .pumped(.idle(waited: 0.1), now: 0.3), then: .endPass(.idle(wentIdle: false, sleep: 0)), state: .open),
        .init(name: "a second idle checkpoint comes an interval after the first",
              given: streaming + [.pumped(.idle(waited: 0), now: 0.2), .idleCheckpointSaved(now: 0.2)],
              when: .pumped(.idle(waited: 0), now: 1.2), then: .saveIdleCheckpoint, state: .open),
        .init(name: "an empty read right after a batch sleeps the shortest time",
              given: streaming + [.pumped(.idle(waited: 0), now: 0.2), .idleCheckpointSaved(now: 0.2), .pumped(.applied, now: 0.5)],
              when: .pumped(.idle(waited: 0), now: 0.501), then: .endPass(.idle(wentIdle: true, sleep: 0.001)), state: .open),
        // Failures.
        .init(name: "a fenced write stands by and gives the lease up", given: streaming,
              when: .failed(.fenced), then: .standBy(seconds: standbyPoll, leaseLost: true), state: .closed),
        .init(name: "a MongoDB failure while streaming closes the stream and backs off", given: streaming,
              when: .failed(.mongodb(authentication: false)),
              then: .backOff(.mongodb(authentication: false), delay: 0.075, attempt: 1), state: .closed),
        .init(name: "a Redis failure while claiming the lease backs off", given: [.nextPass(leaseDue: true)],
              when: .failed(.redis(authentication: true)),
              then: .backOff(.redis(authentication: true), delay: 0.075, attempt: 1), state: .closed),
        .init(name: "a failure while resyncing backs off; the next pass opens from the checkpoint again",
              given: [.nextPass(leaseDue: true), .leaseClaimed(true), .streamOpened(fromCheckpoint: false)],
              when: .failed(.other), then: .backOff(.other, delay: 0.075, attempt: 1), state: .closed),
        .init(name: "a failure saving the idle checkpoint backs off", given: streaming + [.pumped(.idle(waited: 0), now: 1)],
              when: .failed(.redis(authentication: false)),
              then: .backOff(.redis(authentication: false), delay: 0.075, attempt: 1), state: .closed),
        .init(name: "failures in a row double the delay",
              given: streaming + [.failed(.other), .nextPass(leaseDue: false), .failed(.other)],
              when: .failed(.other), then: .backOff(.other, delay: 0.3, attempt: 3), state: .closed),
        .init(name: "lost history met while streaming (not opening from a checkpoint) backs off like any MongoDB failure",
              given: streaming,
              when: .failed(.historyLost), then: .backOff(.historyLost, delay: 0.075, attempt: 1), state: .closed),
        .init(name: "a pass that reads resets the backoff",
              given: streaming + [.failed(.other), .nextPass(leaseDue: false), .streamOpened(fromCheckpoint: true),
                                  .pumped(.applied, now: 1), .nextPass(leaseDue: false)],
              when: .failed(.other), then: .backOff(.other, delay: 0.075, attempt: 1), state: .closed),
        .init(name: "opening without a pass that read keeps the backoff growing",
              given: streaming + [.failed(.other), .nextPass(leaseDue: false), .streamOpened(fromCheckpoint: true)],
              when: .failed(.other), then: .backOff(.other, delay: 0.15, attempt: 2), state: .closed),
    ]

    @Test("transition", arguments: transitions)
    func transition(_ row: WatcherTransition) {
        var machine = WatcherStateMachine(
            settings: .init(leased: row.leased, onHistoryLost: row.onHistoryLost, standbyPoll: Self.standbyPoll), now: 0)
        for step in row.given { _ = step.apply(to: &machine) }
        let action = row.when.apply(to: &machine)
        #expect(Self.rounded(action) == Self.rounded(row.then), "after \(row.given), \(row.when)")
        #expect(machine.state == row.state)
    }

    /// The action with its seconds rounded to microseconds, so sums of doubles compare.
    static func rounded(_ action: WatcherStateMachine.Action) -> WatcherStateMachine.Action {
        func round(_ seconds: Double) -> Double { (seconds * 1e6).rounded() / 1e6 }
        return switch action {
        case .endPass(.idle(let wentIdle, let sleep)): .endPass(.idle(wentIdle: wentIdle, sleep: round(sleep)))
        case .backOff(let failure, let delay, let attempt): .backOff(failure, delay: round(delay), attempt: attempt)
        default: action
        }
    }

    @Test("the restart reason and error kind of each failure are the metric labels the watcher always used")
    func failureLabels() {
        let expected: [(WatcherStateMachine.Failure, String, String)] = [
            (.mongodb(authentication: false), "mongodb", "stream"), (.mongodb(authentication: true), "auth", "stream"),
            (.redis(authentication: false), "redis", "redis"), (.redis(authentication: true), "auth", "redis"),
            (.other, "other", "other"), (.historyLost, "mongodb", "stream"),
        ]
        for (failure, reason, kind) in expected {
            #expect(failure.restartReason == reason, "\(failure)")
            #expect(failure.errorKind == kind, "\(failure)")
        }
    }

    @Test("the idle sleep is a tenth of the quiet time, from 1 ms up to 50 ms")
    func idleSleep() {
        let idle = WatcherStateMachine.IdleTimings()
        for (quiet, sleep) in [(0, 0.001), (0.005, 0.001), (0.02, 0.002), (0.1, 0.01), (0.4, 0.04), (5, 0.05)] {
            #expect(abs(idle.sleep(quietFor: quiet) - sleep) < 1e-9, "quiet for \(quiet) s")
        }
    }

    @Test("with many streams the longest idle sleep grows by 3 ms a stream, so a process's polls stay bounded")
    func idleSleepScalesWithStreams() {
        #expect(WatcherStateMachine.IdleTimings(streams: 3).maxSleep == 0.05)
        #expect(abs(WatcherStateMachine.IdleTimings(streams: 50).maxSleep - 0.15) < 1e-9)
        #expect(abs(WatcherStateMachine.IdleTimings(streams: 50).sleep(quietFor: 60) - 0.15) < 1e-9)
    }
}
