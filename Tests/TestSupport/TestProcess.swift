import Foundation
import Glibc

/// A server started as a child process for a test, its output captured in a file; killed at the latest in `deinit`.
///
/// Spawned with `posix_spawn` rather than Foundation's `Process`: on Linux a `Process` child inherits the signal mask
/// of the spawning Dispatch thread, where SIGTERM is blocked, so a clean stop would never arrive. Here the child gets
/// an empty signal mask, default signal handlers and its own process group.
public final class TestProcess: @unchecked Sendable {
    /// The program that runs.
    public let executable: URL
    /// Its arguments.
    public let arguments: [String]
    /// Where its standard output and standard error go (appended across restarts).
    public let outputURL: URL
    /// Variables added to the test process's environment.
    public let environment: [String: String]

    private let lock = NSLock()
    private var runningPID: pid_t?
    private var lastStatus: Int32?

    /// A process that is not started yet.
    public init(executable: URL, arguments: [String], outputURL: URL, environment: [String: String] = [:]) {
        self.executable = executable
        self.arguments = arguments
        self.outputURL = outputURL
        self.environment = environment
    }

    deinit {
        if let runningPID {
            Glibc.kill(-runningPID, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(runningPID, &status, 0)
            ProcessReaper.forget(runningPID)
        }
    }

    /// Starts the process; it must not be running.
    public func start() throws {
        try lock.withLock {
            precondition(reapIfExited() == nil, "\(executable.lastPathComponent) is already running")
            let pid = try spawn()
            ProcessReaper.track(pid)
            runningPID = pid
            lastStatus = nil
        }
    }

    /// The process id while it runs.
    public var pid: Int32? { lock.withLock { reapIfExited() } }

    /// Whether the process runs.
    public var isRunning: Bool { pid != nil }

    /// How the last run ended: its exit code, or 128 + the signal that killed it; `nil` while it runs.
    public var exitStatus: Int32? { lock.withLock { reapIfExited() == nil ? lastStatus : nil } }

    /// Sends SIGTERM and waits for the exit; sends SIGKILL if it has not exited within `timeout`.
    public func stop(timeout: Duration = .seconds(10)) {
        guard let pid else { return }
        Glibc.kill(pid, SIGTERM)
        if !waitForExit(timeout: timeout) {
            Glibc.kill(-pid, SIGKILL)
            _ = waitForExit(timeout: .seconds(10))
        }
    }

    /// Sends `signal` (e.g. SIGSTOP, SIGCONT) to the process without waiting.
    public func send(_ signal: Int32) {
        guard let pid else { return }
        Glibc.kill(pid, signal)
    }

    /// Sends SIGKILL to the process and its process group and waits for the exit.
    public func kill() {
        guard let pid else { return }
        Glibc.kill(-pid, SIGKILL)
        _ = waitForExit(timeout: .seconds(10))
    }

    /// What the process printed so far.
    public var output: String {
        (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
    }

    /// The first executable called `name` on PATH.
    public static func find(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    /// The running pid, after reaping the child if it has exited. Call with the lock held.
    private func reapIfExited() -> pid_t? {
        guard let running = runningPID else { return nil }
        var status: Int32 = 0
        let result = waitpid(running, &status, WNOHANG)
        if result == 0 { return running }
        if result == running {
            let signal = status & 0x7F
            lastStatus = signal == 0 ? (status >> 8) & 0xFF : 128 + signal
        } else {
            lastStatus = -1
        }
        runningPID = nil
        ProcessReaper.forget(running)
        return nil
    }

    /// Polls until the process has exited; `false` if it still runs after `timeout`.
    public func waitForExit(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now >= deadline { return false }
            usleep(5_000)
        }
        return true
    }

    /// Spawns the child with output redirected, a clean signal state and its own process group.
    private func spawn() throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputURL.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // As the image runs it: no libmongoc counters in /dev/shm (scripts/env.sh says why), unless a test says so.
        let merged = ProcessInfo.processInfo.environment.merging(["MONGOC_DISABLE_SHM": "1"]) { current, _ in current }
            .merging(environment) { _, new in new }
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let result = argv.withUnsafeBufferPointer { pointers in
            envp.withUnsafeBufferPointer { env in
                posix_spawn(&pid, executable.path, &actions, &attributes, pointers.baseAddress!, env.baseAddress!)
            }
        }
        guard result == 0 else {
            throw TestServerError.spawnFailed(executable: executable.path, reason: String(cString: strerror(result)))
        }
        return pid
    }
}
