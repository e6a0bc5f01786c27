import Foundation
import RedisBridge

/// Redis behind Sentinel on loopback for one test: a master, a replica in sync with it, and three sentinels
/// (quorum 2, a master down after 1 s) that know both and each other. `killMaster()` is the failover's start.
public final class RedisSentinelBed: @unchecked Sendable {
    /// The name the sentinels monitor the master under.
    public let masterName = "mymaster"
    /// The first master and its replica.
    public let master: RedisTestServer
    public let replica: RedisTestServer
    /// The sentinels' ports.
    public private(set) var sentinelPorts: [Int] = []
    private var sentinels: [TestProcess] = []
    private let directory: URL

    /// Whether every server and sentinel speaks TLS only (`TestCertificates.shared()`, no client certificates).
    public let tls: Bool

    /// Starts the master and the replica (replication up), then the sentinels (each seeing the replica and the two
    /// other sentinels); with `tls`, replication, the sentinels and their links are all TLS only. Throws when a
    /// server does not start or the set does not settle within 30 s.
    public init(tls: Bool = false) throws {
        self.tls = tls
        let config = ["repl-diskless-sync-delay 0", "appendonly no"] + (tls ? ["tls-replication yes"] : [])
        let serverTLS: RedisTestServer.Options.TLS? = tls ? .init() : nil
        master = try RedisTestServer(.init(extraConfig: config, tls: serverTLS))
        replica = try RedisTestServer(.init(extraConfig: config + ["replicaof 127.0.0.1 \(master.port)"], tls: serverTLS))
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-sentinel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try waitFor("the replica's link to the master", seconds: 30) {
            try replica.connect().command(["INFO", "replication"]).text?.contains("master_link_status:up") == true
        }
        guard let executable = TestProcess.find("redis-server") else {
            throw TestServerError.executableNotFound(name: "redis-server", hint: "install redis-server")
        }
        for index in 0..<3 {
            let port = try FreePort.next()
            let dir = directory.appendingPathComponent("s\(index)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let conf = dir.appendingPathComponent("sentinel.conf")
            let tlsCertificates = try tls ? TestCertificates.shared() : nil
            let listenLines = tlsCertificates.map { certificates in """
                port 0
                tls-port \(port)
                tls-replication yes
                tls-auth-clients no
                tls-cert-file "\(certificates.serverCertFile)"
                tls-key-file "\(certificates.serverKeyFile)"
                tls-ca-cert-file "\(certificates.caFile)"
                """ } ?? "port \(port)"
            try """
                \(listenLines)
                bind 127.0.0.1
                dir "\(dir.path)"
                logfile "\(dir.appendingPathComponent("sentinel.log").path)"
                sentinel monitor \(masterName) 127.0.0.1 \(master.port) 2
                sentinel down-after-milliseconds \(masterName) 1000
                sentinel failover-timeout \(masterName) 5000
                sentinel parallel-syncs \(masterName) 1
                """.write(to: conf, atomically: true, encoding: .utf8)
            let process = TestProcess(executable: executable, arguments: [conf.path, "--sentinel"],
                                      outputURL: dir.appendingPathComponent("sentinel.out"))
            try process.start()
            sentinels.append(process)
            sentinelPorts.append(port)
        }
        try waitFor("the sentinels to see the replica and each other", seconds: 30) {
            try sentinelPorts.allSatisfy { port in
                let connection = try RedisConnection(options: sentinelOptions(port: port))
                let master = try connection.command(["SENTINEL", "master", masterName]).array ?? []
                let fields = Dictionary(uniqueKeysWithValues: stride(from: 0, to: master.count - 1, by: 2).compactMap { i in
                    master[i].text.flatMap { key in master[i + 1].text.map { (key, $0) } }
                })
                return fields["num-slaves"] == "1" && fields["num-other-sentinels"] == "2"
            }
        }
    }

    deinit {
        sentinels.forEach { $0.kill() }
        master.cleanUp()
        replica.cleanUp()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The sentinels as `host:port` texts.
    public var sentinelAddresses: [String] { sentinelPorts.map { "127.0.0.1:\($0)" } }

    /// Options for a connection that finds the master through the sentinels (short timeouts, the bed's TLS).
    public func masterOptions() -> RedisConnectionOptions {
        let nodes = sentinelPorts.map { RedisSentinelOptions.Node(host: "127.0.0.1", port: $0) }
        var options = RedisConnectionOptions(connectTimeout: .seconds(1), commandTimeout: .seconds(2),
                                             sentinel: RedisSentinelOptions(masterName: masterName, nodes: nodes))
        options.tls = sentinelOptions(port: sentinelPorts[0]).tls
        return options
    }

    /// Options to connect to the sentinel at `port` (over TLS with the test CA when the bed is TLS).
    public func sentinelOptions(port: Int) -> RedisConnectionOptions {
        let ca = tls ? (try? TestCertificates.shared().caFile) : nil
        return RedisConnectionOptions(port: port, connectTimeout: .seconds(1), tls: ca.map { RedisTLSOptions(caFile: $0) })
    }

    /// The master's port as the first sentinel names it now.
    public func currentMasterPort() throws -> Int? {
        let connection = try RedisConnection(options: sentinelOptions(port: sentinelPorts[0]))
        let reply = try connection.command(["SENTINEL", "get-master-addr-by-name", masterName])
        return reply.array.flatMap { $0.count == 2 ? $0[1].text.flatMap(Int.init) : nil }
    }

    /// SIGKILLs the first master, as a crash would.
    public func killMaster() throws {
        try master.kill()
    }

    /// The sentinels' logs, for failure messages.
    public var log: String {
        (0..<sentinels.count).map { index in
            let file = directory.appendingPathComponent("s\(index)/sentinel.log")
            return "--- sentinel \(index) ---\n" + ((try? String(contentsOf: file, encoding: .utf8)) ?? "")
        }.joined(separator: "\n")
    }

    private func waitFor(_ what: String, seconds: Double, _ condition: () throws -> Bool) throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if (try? condition()) == true { return }
            usleep(100_000)
        }
        throw TestServerError.notReady(server: what, log: log)
    }
}
