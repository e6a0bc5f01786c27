import Foundation
import RedisBridge

/// A Redis Cluster on loopback for one test: three masters and (by default) three replicas (`redis-server --cluster-enabled yes`
/// from Debian, joined by `redis-cli --cluster create … --cluster-replicas 1`), settled: every node sees all 16,384
/// slots served and every replica's link to its master is up (so a killed master's replica can take over at once:
/// `repl-diskless-sync-delay 0`).
public final class RedisClusterBed: @unchecked Sendable {
    /// The six nodes, the first three created as masters.
    public let nodes: [RedisTestServer]
    private let redisCLI: URL

    /// Starts and joins the nodes (three masters only without `replicas`); throws when the cluster does not settle
    /// within 60 s.
    public init(replicas: Bool = true) throws {
        guard let cli = TestProcess.find("redis-cli") else {
            throw TestServerError.executableNotFound(name: "redis-cli", hint: "install redis-tools")
        }
        redisCLI = cli
        let config = ["cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000",
                      "repl-diskless-sync-delay 0", "appendonly no"]
        // The cluster bus port is the data port + 10,000 unless set: set it, since free ports may be above 55,535.
        nodes = try (0..<(replicas ? 6 : 3)).map { _ in try RedisTestServer(.init(extraConfig: config + ["cluster-port \(try FreePort.next())"])) }
        try runCLI(["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" }
                   + ["--cluster-replicas", replicas ? "1" : "0", "--cluster-yes"])
        try waitUntilSettled(seconds: 60)
    }

    /// `redis://127.0.0.1:<first node>/0`, the seed a config names.
    public var seedURL: String { "redis://127.0.0.1:\(nodes[0].port)/0" }

    /// The other nodes as `host:port`, for `redis.cluster.nodes`.
    public var seedAddresses: [String] { nodes.dropFirst().map { "127.0.0.1:\($0.port)" } }

    /// Options for a `RedisCluster` (short timeouts).
    public func clusterOptions() -> RedisConnectionOptions {
        RedisConnectionOptions(connectTimeout: .seconds(1), commandTimeout: .seconds(2))
    }

    /// A `RedisCluster` client of this bed.
    public func client() -> RedisCluster {
        RedisCluster(options: clusterOptions(), seeds: nodes.map { RedisCluster.Node(host: "127.0.0.1", port: $0.port) })
    }

    /// The nodes that are masters now, with their cluster ids.
    public func masters() throws -> [(server: RedisTestServer, id: String)] {
        try nodes.compactMap { node in
            guard node.isRunning else { return nil }
            let myself = try node.connect().command(["CLUSTER", "MYID"]).text ?? ""
            let role = try node.connect().command(["ROLE"]).array?.first?.text
            return role == "master" ? (node, myself) : nil
        }
    }

    /// Moves `slots` slots from one master to another with `redis-cli --cluster reshard` (keys included).
    public func reshard(from source: String, to target: String, slots: Int) throws {
        try runCLI(["--cluster", "reshard", "127.0.0.1:\(nodes.first(where: \.isRunning)!.port)",
                    "--cluster-from", source, "--cluster-to", target, "--cluster-slots", String(slots),
                    "--cluster-yes", "--cluster-pipeline", "100"])
    }

    /// Waits until every running node sees every slot served (`cluster_state:ok`) and every running replica's link
    /// to its master is up.
    public func waitUntilSettled(seconds: Double) throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if (try? isSettled()) == true { return }
            usleep(100_000)
        }
        throw TestServerError.notReady(server: "redis cluster", log: log)
    }

    private func isSettled() throws -> Bool {
        for node in nodes where node.isRunning {
            let connection = try node.connect()
            guard let info = try connection.command(["CLUSTER", "INFO"]).text,
                  info.contains("cluster_state:ok"), info.contains("cluster_slots_ok:16384") else { return false }
            let replication = try connection.command(["INFO", "replication"]).text ?? ""
            if replication.contains("role:slave"), !replication.contains("master_link_status:up") { return false }
        }
        return true
    }

    /// Every node's log, for failure messages.
    public var log: String {
        nodes.enumerated().map { "--- node \($0.offset) (port \($0.element.port)) ---\n" + $0.element.log }
            .joined(separator: "\n")
    }

    /// Stops every node and removes their directories.
    public func cleanUp() {
        for node in nodes { node.cleanUp() }
    }

    private func runCLI(_ arguments: [String]) throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        let process = TestProcess(executable: redisCLI, arguments: arguments, outputURL: output)
        try process.start()
        guard process.waitForExit(timeout: .seconds(120)), process.exitStatus == 0 else {
            process.kill()
            throw TestServerError.notReady(server: "redis-cli \(arguments.prefix(2).joined(separator: " "))",
                                           log: process.output)
        }
    }
}

/// Runs `body` with a fresh cluster, stopped when `body` returns or throws (printing the nodes' logs on a throw).
public func withRedisCluster<R>(_ body: (RedisClusterBed) async throws -> R) async throws -> R {
    let bed = try RedisClusterBed()
    defer { bed.cleanUp() }
    do {
        return try await body(bed)
    } catch {
        print(bed.log.suffix(8000))
        throw error
    }
}
