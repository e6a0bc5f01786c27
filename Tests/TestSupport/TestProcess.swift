import Foundation
import Glibc

/// A server started as a child process for a test, its output captured in a file; killed at the latest in `deinit`.
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
    private var process: Process?

    /// A process that is not started yet.
    public init(executable: URL, arguments: [String], outputURL: URL, environment: [String: String] = [:]) {
        self.executable = executable
        self.arguments = arguments
        self.outputURL = outputURL
        self.environment = environment
    }

    deinit {
        if let process, process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
        }
    }

    /// Starts the process; it must not be running.
    public func start() throws {
        try lock.withLock {
            precondition(process == nil || process?.isRunning == false, "\(executable.lastPathComponent) is already running")
            if !FileManager.default.fileExists(atPath: outputURL.path) {
                _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
            }
            let output = try FileHandle(forWritingTo: outputURL)
            output.seekToEndOfFile()
            let child = Process()
            child.executableURL = executable
            child.arguments = arguments
            child.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
            child.standardInput = FileHandle.nullDevice
            child.standardOutput = output
            child.standardError = output
            try child.run()
            try? output.close()
            ProcessReaper.track(child.processIdentifier)
            process = child
        }
    }

    /// The process id while it runs.
    public var pid: Int32? {
        lock.withLock { process.flatMap { $0.isRunning ? $0.processIdentifier : nil } }
    }

    /// Whether the process runs.
    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// The exit status of the last run, once it has ended.
    public var exitStatus: Int32? {
        lock.withLock { process.flatMap { $0.isRunning ? nil : $0.terminationStatus } }
    }

    /// Sends SIGTERM and waits for the exit; sends SIGKILL if it has not exited within `timeout`.
    public func stop(timeout: Duration = .seconds(10)) {
        guard let child = lock.withLock({ process }), child.isRunning else { return }
        Glibc.kill(child.processIdentifier, SIGTERM)
        if !waitForExit(child, timeout: timeout) {
            Glibc.kill(child.processIdentifier, SIGKILL)
            _ = waitForExit(child, timeout: .seconds(10))
        }
        ProcessReaper.forget(child.processIdentifier)
    }

    /// Sends `signal` (e.g. SIGSTOP, SIGCONT) without waiting.
    public func send(_ signal: Int32) {
        guard let pid else { return }
        Glibc.kill(pid, signal)
    }

    /// Waits until the process has exited by itself; `false` if it still runs after `timeout`.
    public func waitForExit(timeout: Duration) -> Bool {
        guard let child = lock.withLock({ process }) else { return true }
        return waitForExit(child, timeout: timeout)
    }

    /// Sends SIGKILL and waits for the exit.
    public func kill() {
        guard let child = lock.withLock({ process }), child.isRunning else { return }
        Glibc.kill(child.processIdentifier, SIGKILL)
        _ = waitForExit(child, timeout: .seconds(10))
        ProcessReaper.forget(child.processIdentifier)
    }

    /// What the process printed so far.
    public var output: String {
        (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
    }

    /// Polls until `child` has exited; `false` if it still runs after `timeout`.
    private func waitForExit(_ child: Process, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while child.isRunning {
            if ContinuousClock.now >= deadline { return false }
            usleep(10_000)
        }
        return true
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
}
