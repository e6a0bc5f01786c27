import Foundation
import Glibc

/// Remembers every running test server process and kills them all when the test process exits.
///
/// `TestProcess` also kills in `deinit` and the scoped helpers stop servers in `defer`; this is the last line
/// for servers a test leaks. A test process killed by a signal cannot run it.
enum ProcessReaper {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var pids: Set<Int32> = []
    nonisolated(unsafe) private static var installed = false

    /// Starts tracking `pid`, installing the exit hook on first use.
    static func track(_ pid: Int32) {
        lock.withLock {
            if !installed {
                installed = true
                atexit { ProcessReaper.killAll() }
            }
            pids.insert(pid)
        }
    }

    /// Stops tracking `pid`, which has exited.
    static func forget(_ pid: Int32) {
        _ = lock.withLock { pids.remove(pid) }
    }

    /// Sends SIGKILL to every tracked process and its process group.
    static func killAll() {
        let victims = lock.withLock { pids }
        for pid in victims {
            Glibc.kill(-pid, SIGKILL)
            Glibc.kill(pid, SIGKILL)
        }
    }
}
