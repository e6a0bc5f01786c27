@testable import CacheSync
import Foundation
import Logging
import Testing

/// Keeps what is logged through its logger, for a test to read.
final class LogCapture: @unchecked Sendable {
    /// One logged message.
    struct Entry: Sendable {
        /// Its level.
        var level: Logger.Level
        /// Its text.
        var message: String
        /// Its metadata, as text.
        var metadata: [String: String]
    }

    private let lock = NSLock()
    private var logged: [Entry] = []

    /// A logger whose every message (any level) lands here.
    var logger: Logger {
        Logger(label: "test") { _ in Handler(capture: self) }
    }

    /// What was logged, in order.
    var entries: [Entry] { lock.withLock { logged } }

    fileprivate func append(_ entry: Entry) {
        lock.withLock { logged.append(entry) }
    }

    /// Hands every message to the capture.
    private struct Handler: LogHandler {
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.append(Entry(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}

/// `SilenceWatchdog.tick`, driven with chosen clock readings.
@Suite("SilenceWatchdog: warnings about collections without change events")
struct SilenceWatchdogTests {
    static let ns = "shop.products"

    /// Telemetry of one collection this instance leads, and the time of its last activity.
    static func leadingTelemetry(_ namespaces: [String] = [ns]) -> (Telemetry, Double) {
        let telemetry = Telemetry(collections: namespaces)
        for ns in namespaces { telemetry.setLeader(ns, until: .infinity) }
        return (telemetry, telemetry.snapshot()[namespaces[0]]?.lastActivityTime ?? 0)
    }

    /// Ticks once at each of `offsets` seconds after `start`; returns the silent seconds each warning reported.
    static func warnings(_ watchdog: SilenceWatchdog, _ capture: LogCapture, start: Double, offsets: [Double],
                         warned: inout [String: Int]) -> [String] {
        let before = capture.entries.count
        for offset in offsets { watchdog.tick(&warned, now: start + offset) }
        return capture.entries.dropFirst(before).map { $0.metadata["silentSeconds"] ?? "(none)" }
    }

    @Test("a leader's silence is warned about at the threshold, then at 2, 4 and 8 times it, and not in between")
    func doublingWarnings() {
        let (telemetry, start) = Self.leadingTelemetry()
        let capture = LogCapture()
        let watchdog = SilenceWatchdog(telemetry: telemetry, threshold: 10, logger: capture.logger)
        var warned: [String: Int] = [:]
        let offsets: [Double] = [0, 5, 9.9, 10, 11, 15, 19.9, 20, 30, 39.9, 40, 41, 79.9, 80, 159.9, 160]
        #expect(Self.warnings(watchdog, capture, start: start, offsets: offsets, warned: &warned) == ["10", "20", "40", "80", "160"])
        let entry = capture.entries.first
        #expect(entry?.level == .warning)
        #expect(entry?.metadata["collection"] == Self.ns)
        #expect(entry?.message.hasPrefix("collection shop.products: no change event for 10 s") == true, "\(entry?.message ?? "")")
    }

    @Test("after an event the count starts over: the next silence is warned about at the threshold again")
    func activityResets() {
        let (telemetry, start) = Self.leadingTelemetry()
        let capture = LogCapture()
        let watchdog = SilenceWatchdog(telemetry: telemetry, threshold: 10, logger: capture.logger)
        var warned: [String: Int] = [:]
        #expect(Self.warnings(watchdog, capture, start: start, offsets: [10, 20, 30], warned: &warned) == ["10", "20"])
        Thread.sleep(forTimeInterval: 0.01)
        telemetry.eventReceived(Self.ns, operation: "insert")
        let event = telemetry.snapshot()[Self.ns]?.lastActivityTime ?? 0
        #expect(event > start)
        #expect(Self.warnings(watchdog, capture, start: event, offsets: [1, 9.9, 10, 15, 20], warned: &warned) == ["10", "20"])
    }

    @Test("an instance that does not apply the collection never warns; once it leads, it warns about the silence at once")
    func onlyLeadersWarn() {
        let telemetry = Telemetry(collections: [Self.ns])
        let start = telemetry.snapshot()[Self.ns]?.lastActivityTime ?? 0
        let capture = LogCapture()
        let watchdog = SilenceWatchdog(telemetry: telemetry, threshold: 10, logger: capture.logger)
        var warned: [String: Int] = [:]
        #expect(Self.warnings(watchdog, capture, start: start, offsets: [10, 100, 1000], warned: &warned).isEmpty)
        telemetry.setLeader(Self.ns, until: .infinity)
        #expect(Self.warnings(watchdog, capture, start: start, offsets: [1000, 1100], warned: &warned) == ["1000"])
        telemetry.setLeader(Self.ns, until: 0)
        #expect(Self.warnings(watchdog, capture, start: start, offsets: [1200], warned: &warned).isEmpty)
        telemetry.setLeader(Self.ns, until: .infinity)
        #expect(Self.warnings(watchdog, capture, start: start, offsets: [1300], warned: &warned) == ["1300"],
                "a new leadership warns afresh")
    }

    @Test("a threshold of 0 turns the warnings off")
    func zeroThreshold() {
        let (telemetry, start) = Self.leadingTelemetry()
        let capture = LogCapture()
        let watchdog = SilenceWatchdog(telemetry: telemetry, threshold: 0, logger: capture.logger)
        var warned: [String: Int] = [:]
        #expect(Self.warnings(watchdog, capture, start: start, offsets: [0, 1, 10, 1000, 100_000], warned: &warned).isEmpty)
    }

    @Test("each collection is measured from its own last event")
    func perCollection() {
        let quiet = "shop.products", busy = "shop.users"
        let (telemetry, start) = Self.leadingTelemetry([quiet, busy])
        Thread.sleep(forTimeInterval: 0.01)
        telemetry.eventReceived(busy, operation: "update")
        let capture = LogCapture()
        let watchdog = SilenceWatchdog(telemetry: telemetry, threshold: 10, logger: capture.logger)
        var warned: [String: Int] = [:]
        watchdog.tick(&warned, now: start + 10)
        #expect(capture.entries.map { $0.metadata["collection"] } == [quiet])
    }
}
