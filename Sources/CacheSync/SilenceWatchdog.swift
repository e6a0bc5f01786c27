import Foundation
import Logging
import ServiceLifecycle

/// Exports `cachesync_seconds_since_last_event{collection}` every second and logs a warning when a collection
/// this instance applies has been silent for `threshold` seconds, then again at 2, 4, 8… times it (0: no warnings).
struct SilenceWatchdog: Service {
    /// Where the collections' last activity is read and the gauge written.
    let telemetry: Telemetry
    /// Seconds of silence per warning; 0 turns warnings off.
    let threshold: Double
    /// Where warnings go.
    let logger: Logger
    /// How often to measure.
    var interval: Duration = .seconds(1)

    /// Ticks until graceful shutdown.
    func run() async throws {
        var warnedPeriods: [String: Int] = [:]
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            tick(&warnedPeriods)
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }

    /// One measurement; `warnedPeriods` remembers the multiple of `threshold` last reported per collection.
    func tick(_ warnedPeriods: inout [String: Int], now: Double = Date().timeIntervalSince1970) {
        for (ns, stats) in telemetry.snapshot() {
            guard stats.leader else {
                telemetry.silence(ns, seconds: 0)
                warnedPeriods[ns] = nil
                continue
            }
            let silent = max(0, now - stats.lastActivityTime)
            telemetry.silence(ns, seconds: silent)
            guard threshold > 0 else { continue }
            let periods = Int(silent / threshold)
            if periods == 0 {
                warnedPeriods[ns] = nil
            } else if periods >= 2 * warnedPeriods[ns, default: 0] {
                warnedPeriods[ns] = periods
                let message = "collection \(ns): no change event for \(Int(silent)) s (http.silenceWarning is \(threshold) s); "
                    + "check that the application still writes and that the change stream is healthy"
                logger.warning("\(message)",
                               metadata: ["collection": "\(ns)", "silentSeconds": "\(Int(silent))"])
            }
        }
    }
}
