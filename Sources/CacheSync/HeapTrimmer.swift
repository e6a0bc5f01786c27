import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Hands freed heap memory back to the operating system now and then.
///
/// glibc keeps the memory of freed batches in its arenas, so a burst of changes leaves a few MiB of resident
/// memory behind for good; `malloc_trim` returns the free pages. Watchers call `afterBatch()`, where the trim runs
/// at most once per `interval` across the process (a trim walks the heap), and `wentIdle()` when a burst ends,
/// which always trims.
final class HeapTrimmer: @unchecked Sendable {
    /// The process-wide trimmer.
    static let shared = HeapTrimmer(interval: 0.25)

    /// glibc's `malloc_trim`, looked up at run time (Swift's Glibc module does not import `malloc.h`).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()

    private let interval: Double
    private let lock = NSLock()
    private var lastTrim = 0.0

    /// A trimmer that trims after batches at most once per `interval` seconds.
    init(interval: Double) {
        self.interval = interval
    }

    /// Trims the heap if the last trim is older than the interval.
    func afterBatch() {
        trim(force: false)
    }

    /// Trims the heap: a burst of changes has just ended.
    func wentIdle() {
        trim(force: true)
    }

    private func trim(force: Bool) {
        let now = ProcessInfo.processInfo.systemUptime
        let due = lock.withLock {
            guard force || now - lastTrim >= interval else { return false }
            lastTrim = now
            return true
        }
        if due { _ = Self.mallocTrim?(0) }
    }
}
