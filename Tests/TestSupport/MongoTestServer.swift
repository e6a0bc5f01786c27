import Foundation

/// An `nx-27017` MongoDB wire-protocol server for one test, on a free loopback port, or the server in `MONGODB_URI`.
///
/// Prefer `withMongoServer { server in … }`, which always stops the server and removes its directory.
/// Each object has its own `database` name, so tests sharing an external server do not collide.
public final class MongoTestServer: @unchecked Sendable {
    /// How to run a server this test starts; ignored for an external server.
    public struct Options: Sendable {
        /// Keep the data in memory (lost on restart) instead of an SQLite file in the temporary directory.
        public var inMemory: Bool

        /// Options; the default is file-backed, so data survives `kill()` and `restart()`.
        public init(inMemory: Bool = false) {
            self.inMemory = inMemory
        }
    }

    /// Whether tests start their own servers: `true` unless `MONGODB_URI` is set.
    public static var startsOwnServer: Bool { externalURI == nil }

    /// The configuration this server was started with.
    public let options: Options
    /// Whether this object started the server (and may stop, kill and restart it).
    public let isManaged: Bool
    /// A database name unique to this server object.
    public let database: String
    /// The port the server listens on (0 for an external server); stays the same across `restart()`.
    public let port: Int
    /// The server's temporary directory (database file, logs); `nil` for an external server.
    public let directory: URL?

    private let process: TestProcess?
    private let external: String?

    /// Starts a server (or attaches to `MONGODB_URI`) and waits until it answers `hello`.
    public init(_ options: Options = Options()) throws {
        self.options = options
        database = "test_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        if let uri = Self.externalURI {
            external = uri
            isManaged = false
            port = 0
            directory = nil
            process = nil
            return
        }
        external = nil
        isManaged = true
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-mongo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.directory = directory
        guard let executable = ProcessInfo.processInfo.environment["NX_27017"].map(URL.init(fileURLWithPath:))
            ?? TestProcess.find("nx-27017")
        else {
            throw TestServerError.executableNotFound(name: "nx-27017", hint: "pip install nx-27017 or set NX_27017")
        }
        port = try FreePort.next()
        process = TestProcess(
            executable: executable,
            arguments: [
                "--host", "127.0.0.1", "-p", String(port),
                "--db", options.inMemory ? "memory" : directory.appendingPathComponent("data.sqlite").path,
                "--log-file", directory.appendingPathComponent("nx.log").path,
                "--pid-file", directory.appendingPathComponent("nx.pid").path,
            ],
            outputURL: directory.appendingPathComponent("nx.out"))
        try start()
    }

    deinit {
        process?.kill()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// The connection string for libmongoc: a direct connection to this one server.
    public var uri: String {
        external ?? "mongodb://127.0.0.1:\(port)/?directConnection=true&serverSelectionTimeoutMS=5000"
    }

    /// Starts the stopped server again, on the same port with the same database file.
    public func start() throws {
        guard let process else { throw TestServerError.notManaged(server: "nx-27017") }
        try process.start()
        try waitUntilReady(deadline: .seconds(30))
    }

    /// Stops the server with SIGTERM, waiting for it to exit.
    public func stop() throws {
        guard let process else { throw TestServerError.notManaged(server: "nx-27017") }
        process.stop()
    }

    /// Kills the server with SIGKILL, as a crash would.
    public func kill() throws {
        guard let process else { throw TestServerError.notManaged(server: "nx-27017") }
        process.kill()
    }

    /// Stops the server if it runs and starts it again on the same port with the same database file.
    public func restart() throws {
        try stop()
        try start()
    }

    /// Whether the server process runs; always `true` for an external server.
    public var isRunning: Bool { process?.isRunning ?? true }

    /// The process id of the running server.
    public var pid: Int32? { process?.pid }

    /// The server's log and console output, for failure messages.
    public var log: String {
        guard let directory else { return "(external server)" }
        let logFile = (try? String(contentsOf: directory.appendingPathComponent("nx.log"), encoding: .utf8)) ?? ""
        let console = process?.output ?? ""
        return logFile + (console.isEmpty ? "" : "\n--- console ---\n" + console)
    }

    /// Stops a managed server and removes its directory; an external server keeps the test's database.
    public func cleanUp() {
        process?.stop()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// The `MONGODB_URI` environment variable, when set and not empty.
    private static var externalURI: String? {
        ProcessInfo.processInfo.environment["MONGODB_URI"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Polls with `hello` until the server answers, the process exits, or the deadline passes.
    private func waitUntilReady(deadline: Duration) throws {
        let end = ContinuousClock.now + deadline
        while true {
            if let process, !process.isRunning {
                throw TestServerError.exited(server: "nx-27017", status: process.exitStatus ?? -1, log: log)
            }
            if MongoWireProbe.hello(port: port) { return }
            if ContinuousClock.now >= end { throw TestServerError.notReady(server: "nx-27017", log: log) }
            usleep(50_000)
        }
    }
}

/// Runs `body` with a fresh MongoDB wire server that is stopped (and its directory removed) when `body` returns or throws.
///
/// When `body` throws, the server log is printed to help explain the failure.
public func withMongoServer<R>(_ options: MongoTestServer.Options = .init(), _ body: (MongoTestServer) throws -> R) throws -> R {
    let server = try MongoTestServer(options)
    defer { server.cleanUp() }
    do {
        return try body(server)
    } catch {
        print("nx-27017 on port \(server.port) failed a test with \(error); its log:\n\(server.log)")
        throw error
    }
}

/// Async `withMongoServer`: the server is stopped when `body` returns or throws.
public func withMongoServer<R>(
    _ options: MongoTestServer.Options = .init(), _ body: (MongoTestServer) async throws -> R
) async throws -> R {
    let server = try MongoTestServer(options)
    defer { server.cleanUp() }
    do {
        return try await body(server)
    } catch {
        print("nx-27017 on port \(server.port) failed a test with \(error); its log:\n\(server.log)")
        throw error
    }
}
