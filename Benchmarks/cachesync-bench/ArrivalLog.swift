import Foundation

/// When each integer id first arrived, recorded by one thread and waited for by another.
final class ArrivalLog: @unchecked Sendable {
    private let expected: Int
    private let lock = NSLock()
    private var arrivals: [Int: Double] = [:]
    private let done = DispatchSemaphore(value: 0)

    /// A log that is complete once `expected` distinct ids arrived.
    init(expected: Int) {
        self.expected = expected
    }

    /// Records `id` at `time`, unless it arrived before.
    func record(_ id: Int, at time: Double) {
        lock.withLock { if arrivals[id] == nil { arrivals[id] = time } }
    }

    /// Whether every expected id arrived.
    var isComplete: Bool { lock.withLock { arrivals.count >= expected } }

    /// The recording thread has stopped (complete or not).
    func finish() {
        done.signal()
    }

    /// Waits for the recording thread to stop; each id's arrival time if the log is complete, else `nil`.
    func wait(timeout: Double) -> [Int: Double]? {
        guard done.wait(timeout: .now() + timeout) == .success, isComplete else { return nil }
        return lock.withLock { arrivals }
    }
}
