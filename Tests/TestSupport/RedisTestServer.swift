import CacheSyncCore
import Foundation
import RedisBridge
import Synchronization

/// A real `redis-server` for one test, on a free loopback port in a temporary directory, or the server in `REDIS_URL`.
///
/// Prefer `withRedisServer { server in … }`, which always stops the server and removes its directory.
/// Keys a test writes should go through `key(_:)`, so tests sharing an external server do not collide.
public final class RedisTestServer: @unchecked Sendable {
    /// How to configure a server this test starts; ignored for an external server.
    public struct Options: Sendable {
        /// An ACL user and its password.
        public struct User: Sendable {
            /// The user name.
            public var name: String
            /// The user's password.
            public var password: String

            /// A user with full access to every key and command.
            public init(name: String, password: String) {
                self.name = name
                self.password = password
            }
        }

        /// Turn on the append-only file, so data survives `kill()` and `restart()`.
        public var persistence: Bool
        /// An ACL user with full access; when set, the default user is switched off.
        public var user: User?
        /// A password for the default user (`requirepass`).
        public var password: String?
        /// More `redis.conf` lines.
        public var extraConfig: [String]
        /// TLS only (the plaintext port is off), with `TestCertificates.shared()`.
        public var tls: TLS?

        /// How a TLS-only server is set up.
        public struct TLS: Sendable {
            /// Whether clients must present a certificate the CA signed (`tls-auth-clients yes`).
            public var requireClientCertificate: Bool

            /// TLS with or without client certificates.
            public init(requireClientCertificate: Bool = false) {
                self.requireClientCertificate = requireClientCertificate
            }
        }

        /// Options; the defaults give an unprotected, non-persistent server.
        public init(persistence: Bool = false, user: User? = nil, password: String? = nil, extraConfig: [String] = [],
                    tls: TLS? = nil) {
            self.persistence = persistence
            self.user = user
            self.password = password
            self.extraConfig = extraConfig
            self.tls = tls
        }
    }

    /// Whether tests start their own servers: `true` unless `REDIS_URL` is set.
    public static var startsOwnServer: Bool { externalURL == nil }

    /// The configuration this server was started with.
    public let options: Options
    /// Whether this object started the server (and may stop, kill and restart it).
    public let isManaged: Bool
    /// A prefix unique to this server object, for the keys a test owns.
    public let keyPrefix: String
    /// Host of the server.
    public let host: String
    /// The server's temporary directory (its config, log and data); `nil` for an external server.
    public let directory: URL?

    private let lock = NSLock()
    private var currentPort: Int
    private var process: TestProcess?
    private let external: RedisConnectionOptions?
    private var grantedRule: String?

    /// Starts a server (or attaches to `REDIS_URL`) and waits until it answers PING.
    public init(_ options: Options = Options()) throws {
        self.options = options
        keyPrefix = "test:\(UUID().uuidString.prefix(8).lowercased()):"
        if let url = Self.externalURL {
            guard let parsed = RedisConnectionOptions(url: url) else {
                throw TestServerError.notReady(server: "REDIS_URL", log: "cannot parse REDIS_URL")
            }
            external = parsed
            isManaged = false
            host = parsed.host
            currentPort = parsed.port
            directory = nil
            try waitUntilReady(deadline: .seconds(10))
            return
        }
        external = nil
        isManaged = true
        host = "127.0.0.1"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory!, withIntermediateDirectories: true)
        currentPort = 0
        try startOnFreshPort()
    }

    deinit {
        process?.kill()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// The port the server listens on; stays the same across `restart()`.
    public var port: Int { lock.withLock { currentPort } }

    /// Options to connect to this server, with its credentials (the ACL user when there is one).
    public func connectionOptions(db: Int = 0) -> RedisConnectionOptions {
        if var external {
            if db != 0 { external.db = db }
            return external
        }
        var result = RedisConnectionOptions(host: host, port: port, db: db)
        if let tls = options.tls, let certificates = try? TestCertificates.shared() {
            result.tls = RedisTLSOptions(caFile: certificates.caFile)
            if tls.requireClientCertificate {
                result.tls?.certFile = certificates.clientCertFile
                result.tls?.keyFile = certificates.clientKeyFile
            }
        }
        if let user = options.user {
            result.user = user.name
            result.password = user.password
        } else if let password = options.password {
            result.password = password
        }
        return result
    }

    /// The ACL user cachesync connects as in the integration tests (`sidecarURL`), with only the commands and keys
    /// `RedisACL` lists: `CacheSyncProcess` grants it exactly `cachesync check-config --acl`'s rule for the config
    /// it starts with. Its password needs percent-encoding in a URL.
    public static let leastPrivilegeUser = "cachesync-least"
    public static let leastPrivilegePassword: String = {
        let password = "lp-\(UUID().uuidString.prefix(8))?#%@/:"
        TestSecrets.register(password, as: "the least-privilege user's password")
        return password
    }()

    /// The URL cachesync connects with: `REDIS_URL` for an external server; the `options.user` or `options.password`
    /// of a server started with them (the tests of credentials); else `leastPrivilegeUser`.
    public func sidecarURL(db: Int = 0) -> String {
        if let url = Self.externalURL { return url }
        let (user, password) = options.user.map { ($0.name, $0.password) }
            ?? options.password.map { ("", $0) } ?? (Self.leastPrivilegeUser, Self.leastPrivilegePassword)
        let encode = TestSecrets.percentEncoded
        return "\(options.tls == nil ? "redis" : "rediss")://\(encode(user)):\(encode(password))@\(host):\(port)/\(db)"
    }

    /// Sets `leastPrivilegeUser`'s ACL to `rule` (`RedisACL.rule`), now and after every restart.
    public func grantLeastPrivilege(rule: String) throws {
        lock.withLock { grantedRule = rule }
        try applyGrantedRule()
    }

    /// When `config` (a cachesync config's text) connects as `leastPrivilegeUser` to a server a test started, grants
    /// that user exactly `RedisACL`'s rule for the config. A config that does not parse is left alone (tests of bad
    /// configs); so is one that does not name a server of this process.
    public static func grantLeastPrivilege(forConfig config: String, environment: [String: String]) throws {
        guard config.contains(leastPrivilegeUser),
              let parsed = try? ConfigLoader.parse(text: config, environment: environment),
              parsed.redis.endpoint.user == leastPrivilegeUser, parsed.redis.sentinel == nil
        else { return }
        // A cluster's seeds are all its nodes (SidecarFixture names every one).
        let ports = [parsed.redis.endpoint.port] + (parsed.redis.cluster?.nodes.map(\.port) ?? [])
        let rule = RedisACL.rule(keyPatterns: RedisACL.keyPatterns(parsed), commands: RedisACL.commands(parsed))
        for port in ports {
            guard let server = registry.withLock({ $0[port]?.server }) else { continue }
            try server.grantLeastPrivilege(rule: rule)
        }
    }

    private func applyGrantedRule() throws {
        guard isManaged, let rule = lock.withLock({ grantedRule }) else { return }
        let arguments = ["ACL", "SETUSER", Self.leastPrivilegeUser, "reset", "on", ">" + Self.leastPrivilegePassword]
            + rule.split(separator: " ").map(String.init)
        _ = try connect().command(arguments)
    }

    /// The managed servers of this process by port, for `grantLeastPrivilege(forConfig:environment:)`.
    private static let registry = Mutex<[Int: WeakServer]>([:])
    private struct WeakServer { weak var server: RedisTestServer? }

    /// A new connection to this server.
    public func connect(db: Int = 0) throws -> RedisConnection {
        try RedisConnection(options: connectionOptions(db: db))
    }

    /// `name` under this server's key prefix.
    public func key(_ name: String) -> String { keyPrefix + name }

    /// Starts the stopped server again, on the same port with the same directory.
    public func start() throws {
        guard isManaged, let process else { throw TestServerError.notManaged(server: "redis-server") }
        try process.start()
        try waitUntilReady(deadline: .seconds(10))
        try applyGrantedRule()
    }

    /// Stops the server with SIGTERM (a clean shutdown), waiting for it to exit.
    public func stop() throws {
        guard isManaged, let process else { throw TestServerError.notManaged(server: "redis-server") }
        process.stop()
    }

    /// Kills the server with SIGKILL, as a crash would.
    public func kill() throws {
        guard isManaged, let process else { throw TestServerError.notManaged(server: "redis-server") }
        process.kill()
    }

    /// Stops the server if it runs and starts it again on the same port with the same directory.
    public func restart() throws {
        try stop()
        try start()
    }

    /// Whether the server process runs; always `true` for an external server.
    public var isRunning: Bool { process?.isRunning ?? !isManaged }

    /// The server's log and console output, for failure messages.
    public var log: String {
        guard let directory else { return "(external server \(connectionOptions()))" }
        let logFile = (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
        let console = process?.output ?? ""
        return logFile + (console.isEmpty ? "" : "\n--- console ---\n" + console)
    }

    /// Stops a managed server and removes its directory, or deletes this test's keys from an external server.
    public func cleanUp() {
        if isManaged {
            process?.stop()
            if let directory { try? FileManager.default.removeItem(at: directory) }
            return
        }
        guard let connection = try? connect() else { return }
        try? connection.scan(match: keyPrefix + "*", count: 1000) { keys in
            _ = try? connection.command(["UNLINK"] + keys)
            return true
        }
    }

    /// The `REDIS_URL` environment variable, when set and not empty.
    private static var externalURL: String? {
        ProcessInfo.processInfo.environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Picks a free port and starts there, trying another port if this one was taken meanwhile.
    private func startOnFreshPort() throws {
        var lastError: Error = TestServerError.noFreePort
        for _ in 0..<3 {
            let port = try FreePort.next()
            lock.withLock { currentPort = port }
            let process = try makeProcess(port: port)
            self.process = process
            do {
                try process.start()
                try waitUntilReady(deadline: .seconds(10))
                Self.registry.withLock { $0[port] = WeakServer(server: self) }
                return
            } catch {
                lastError = error
                process.kill()
                guard log.contains("Address already in use") else { throw error }
            }
        }
        throw lastError
    }

    /// Writes `redis.conf` for `port` and returns the (not yet started) process that uses it.
    private func makeProcess(port: Int) throws -> TestProcess {
        guard let directory else { throw TestServerError.notManaged(server: "redis-server") }
        guard let executable = ProcessInfo.processInfo.environment["REDIS_SERVER"].map(URL.init(fileURLWithPath:))
            ?? TestProcess.find("redis-server")
        else {
            throw TestServerError.executableNotFound(name: "redis-server", hint: "install redis-server or set REDIS_SERVER")
        }
        var lines = [
            options.tls == nil ? "port \(port)" : "port 0",
            "bind 127.0.0.1",
            "save \"\"",
            "appendonly \(options.persistence ? "yes" : "no")",
            "appendfsync everysec",
            "dir \(Self.quoted(directory.path))",
            "logfile \(Self.quoted(directory.appendingPathComponent("redis.log").path))",
            "daemonize no",
        ]
        if let user = options.user {
            lines.append("user \(Self.quoted(user.name)) on \(Self.quoted(">" + user.password)) ~* &* +@all")
            lines.append("user default off")
        }
        if let password = options.password {
            lines.append("requirepass \(Self.quoted(password))")
        }
        // Until a test grants it a config's exact rule (which start() grants again after a restart).
        lines.append("user \(Self.leastPrivilegeUser) on \(Self.quoted(">" + Self.leastPrivilegePassword)) "
                     + RedisACL.rule(keyPatterns: [Self.quoted(CacheKey.escapeGlob(keyPrefix) + "*")]))
        if let tls = options.tls {
            let certificates = try TestCertificates.shared()
            lines += [
                "tls-port \(port)",
                "tls-cert-file \(Self.quoted(certificates.serverCertFile))",
                "tls-key-file \(Self.quoted(certificates.serverKeyFile))",
                "tls-ca-cert-file \(Self.quoted(certificates.caFile))",
                "tls-auth-clients \(tls.requireClientCertificate ? "yes" : "no")",
            ]
        }
        lines += options.extraConfig
        let config = directory.appendingPathComponent("redis.conf")
        try (lines.joined(separator: "\n") + "\n").write(to: config, atomically: true, encoding: .utf8)
        return TestProcess(
            executable: executable, arguments: [config.path],
            outputURL: directory.appendingPathComponent("redis.out"))
    }

    /// Polls with PING until the server answers, the process exits, or the deadline passes.
    private func waitUntilReady(deadline: Duration) throws {
        let end = ContinuousClock.now + deadline
        var probe = connectionOptions()
        probe.connectTimeout = .milliseconds(500)
        probe.commandTimeout = .seconds(2)
        while true {
            if let process, !process.isRunning {
                throw TestServerError.exited(server: "redis-server", status: process.exitStatus ?? -1, log: log)
            }
            if let connection = try? RedisConnection(options: probe),
               let reply = try? connection.command(["PING"]), reply == .status("PONG") {
                return
            }
            if ContinuousClock.now >= end { throw TestServerError.notReady(server: "redis-server", log: log) }
            usleep(20_000)
        }
    }

    /// `text` as a double-quoted `redis.conf` argument.
    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

/// Runs `body` with a fresh Redis server that is stopped (and its directory removed) when `body` returns or throws.
///
/// When `body` throws, the server log is printed to help explain the failure.
public func withRedisServer<R>(_ options: RedisTestServer.Options = .init(), _ body: (RedisTestServer) throws -> R) throws -> R {
    let server = try RedisTestServer(options)
    defer { server.cleanUp() }
    do {
        return try body(server)
    } catch {
        print("redis-server on port \(server.port) failed a test with \(error); its log:\n\(server.log)")
        throw error
    }
}

/// Async `withRedisServer`: the server is stopped when `body` returns or throws.
public func withRedisServer<R>(
    _ options: RedisTestServer.Options = .init(), _ body: (RedisTestServer) async throws -> R
) async throws -> R {
    let server = try RedisTestServer(options)
    defer { server.cleanUp() }
    do {
        return try await body(server)
    } catch {
        print("redis-server on port \(server.port) failed a test with \(error); its log:\n\(server.log)")
        throw error
    }
}
