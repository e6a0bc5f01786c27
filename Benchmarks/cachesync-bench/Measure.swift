import Foundation
import Glibc
import TestSupport

/// Clocks, percentiles and `/proc` readings the benchmarks share.
enum Measure {
    /// Monotonic seconds.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// CPU seconds the calling thread has used.
    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Sleeps until monotonic time `deadline`.
    static func sleep(until deadline: Double) {
        let left = deadline - now()
        if left > 0 { usleep(UInt32(left * 1e6)) }
    }

    /// The `p` quantile (0…1) of `values`, by nearest rank.
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = max(1, Int((Double(sorted.count) * p).rounded(.up)))
        return sorted[min(sorted.count, rank) - 1]
    }

    /// Resident memory of process `pid` in MiB (`VmRSS`), NaN when it cannot be read.
    static func residentMiB(_ pid: Int32) -> Double {
        ResidentMemory.bytes(pid: pid).map { Double($0) / 1_048_576 } ?? .nan
    }

    /// The private (anonymous) part of `residentMiB`, NaN when it cannot be read.
    static func privateMiB(_ pid: Int32) -> Double {
        ResidentMemory.privateBytes(pid: pid).map { Double($0) / 1_048_576 } ?? .nan
    }

    /// User plus system CPU seconds process `pid` has used.
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return .nan }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// Samples a process's resident memory every 20 ms on its own thread and keeps the highest values.
final class ResidentMemorySampler: @unchecked Sendable {
    /// Peaks in MiB: all resident memory (`VmRSS`), and its private part (`RssAnon`).
    struct Peak {
        var resident = 0.0
        var `private` = 0.0
    }

    private let pid: Int32
    private let lock = NSLock()
    private var peak = Peak()
    private var running = true

    /// Starts sampling `pid`.
    init(pid: Int32) {
        self.pid = pid
        Thread.detachNewThread { [self] in
            while lock.withLock({ running }) {
                let rss = Measure.residentMiB(pid), own = Measure.privateMiB(pid)
                lock.withLock {
                    peak.resident = max(peak.resident, rss.isNaN ? 0 : rss)
                    peak.private = max(peak.private, own.isNaN ? 0 : own)
                }
                usleep(20_000)
            }
        }
    }

    /// Stops sampling and returns the peaks.
    func stop() -> Peak {
        lock.withLock {
            running = false
            return peak
        }
    }
}
