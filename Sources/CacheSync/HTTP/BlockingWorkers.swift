import Foundation

/// A fixed set of dedicated threads for blocking calls (hiredis, libmongoc), so they never block the
/// cooperative pool; each job learns which worker runs it, so a worker can own a connection.
final class BlockingWorkers: @unchecked Sendable {
    private typealias Job = @Sendable (Int) -> Void

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var stopped = false

    /// How many worker threads there are; jobs get an index in `0..<count`.
    let count: Int

    /// Starts `count` threads named `<name> <index>`.
    init(count: Int, name: String) {
        self.count = max(1, count)
        for index in 0..<self.count {
            let thread = Thread { [self] in work(index) }
            thread.name = "\(name) \(index)"
            thread.start()
        }
    }

    /// Runs `body` on a worker thread and returns its result; throws `CancellationError` after `shutdown()`.
    func run<T: Sendable>(_ body: @escaping @Sendable (Int) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let job: Job = { index in continuation.resume(with: Result { try body(index) }) }
            condition.lock()
            defer { condition.unlock() }
            guard !stopped else {
                continuation.resume(throwing: CancellationError())
                return
            }
            jobs.append(job)
            condition.signal()
        }
    }

    /// Lets the queued jobs finish, then ends the threads; later `run` calls throw.
    func shutdown() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func work(_ index: Int) {
        while true {
            condition.lock()
            while jobs.isEmpty, !stopped { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job(index)
        }
    }
}
