import Foundation

/// The switches that only tests set, read once from the environment. They exist in debug builds only (Package.swift
/// defines `CACHESYNC_TEST_SWITCHES` for the debug configuration, which the test command builds): a release binary
/// has neither the switches nor their names, so none of them can turn a correctness mechanism off in production.
struct TestSwitches: Sendable {
    /// Seconds between reading a batch and applying it, so a test can pause the process with a batch in flight and
    /// prove the fence (`CACHESYNC_TEST_APPLY_DELAY`).
    var applyDelay = 0.0
    /// Store every read-through miss without the lease check, so a race test can show that stale documents get
    /// cached without it (`CACHESYNC_TEST_DISABLE_READ_LEASE=1`).
    var readLeaseDisabled = false
    /// Seconds between the read-through's MongoDB read and its cache write, to widen the window in which a change
    /// can overtake a reader (`CACHESYNC_TEST_READ_DELAY_MS`, in milliseconds).
    var readDelay = 0.0
    /// Seconds a warm-up waits after reading a chunk, so that more changes land between a chunk's read and its write
    /// (`CACHESYNC_TEST_WARMUP_READ_DELAY_MS`, in milliseconds).
    var warmupReadDelay = 0.0
    /// The names of the switches set, for the warning logged at start.
    private(set) var active: [String] = []

    /// The process's switches.
    static let current = TestSwitches(environment: ProcessInfo.processInfo.environment)

    /// No switch set.
    init() {}

    /// The switches set in `environment`; none in a release build.
    init(environment: [String: String]) {
        #if CACHESYNC_TEST_SWITCHES
        if let text = environment["CACHESYNC_TEST_APPLY_DELAY"], let seconds = Double(text), seconds > 0 {
            applyDelay = seconds
            active.append("CACHESYNC_TEST_APPLY_DELAY")
        }
        if environment["CACHESYNC_TEST_DISABLE_READ_LEASE"] == "1" {
            readLeaseDisabled = true
            active.append("CACHESYNC_TEST_DISABLE_READ_LEASE")
        }
        if let text = environment["CACHESYNC_TEST_READ_DELAY_MS"], let ms = Double(text), ms > 0 {
            readDelay = ms / 1000
            active.append("CACHESYNC_TEST_READ_DELAY_MS")
        }
        if let text = environment["CACHESYNC_TEST_WARMUP_READ_DELAY_MS"], let ms = Double(text), ms > 0 {
            warmupReadDelay = ms / 1000
            active.append("CACHESYNC_TEST_WARMUP_READ_DELAY_MS")
        }
        #endif
    }
}
