import Foundation
import Glibc

/// The real `cachesync` binary, run by a test with a config file in a temporary directory.
public final class CacheSyncProcess: @unchecked Sendable {
    /// The temporary directory holding the config and the output.
    public let directory: URL
    /// The config file.
    public let configURL: URL
    /// The running (or stopped) binary.
    public let process: TestProcess
    private let config: String
    private let environment: [String: String]

    /// Writes `config` to a file and prepares `cachesync run` (not started yet).
    public init(config: String, environment: [String: String] = [:], extraArguments: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configURL = directory.appendingPathComponent("cachesync.yaml")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        self.config = config
        self.environment = environment
        process = TestProcess(executable: Self.binary,
                              arguments: ["run", "--config", configURL.path] + extraArguments,
                              outputURL: directory.appendingPathComponent("cachesync.log"),
                              environment: environment)
    }

    deinit {
        process.kill()
        TestSecrets.check(process.output, from: "the log of cachesync run (\(directory.lastPathComponent))")
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the binary; a config connecting as `RedisTestServer.leastPrivilegeUser` grants that user exactly the
    /// config's least-privilege rule first.
    public func start() throws {
        try RedisTestServer.grantLeastPrivilege(forConfig: config, environment: environment)
        try process.start()
    }

    /// What it logged so far.
    public var log: String { process.output }

    /// Waits until the log contains `text`; `false` on timeout.
    public func waitForLog(_ text: String, timeout: Duration = .seconds(15)) -> Bool {
        waitUntil(timeout: timeout) { self.log.contains(text) }
    }

    /// The built `cachesync` binary: `CACHESYNC_BINARY`, else beside the test bundle, else `.build/debug`.
    public static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["CACHESYNC_BINARY"] { return URL(fileURLWithPath: path) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("cachesync")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/cachesync")
    }

    /// Runs a one-shot command (`check-config`, `verify`, `version`) and returns its exit status and output.
    public static func runCommand(_ arguments: [String], environment: [String: String] = [:],
                                  timeout: Duration = .seconds(60)) throws -> (status: Int32, output: String) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-cmd-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: out) }
        let process = TestProcess(executable: binary, arguments: arguments, outputURL: out, environment: environment)
        try process.start()
        let finished = process.waitForExit(timeout: timeout)
        if !finished { process.kill() }
        TestSecrets.check(process.output, from: "cachesync \(arguments.first ?? "")")
        return finished ? (process.exitStatus ?? -1, process.output) : (-1, process.output + "\n(timed out)")
    }
}

/// Polls `condition` every 50 ms until it holds; `false` if it still does not after `timeout`.
public func waitUntil(timeout: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}
