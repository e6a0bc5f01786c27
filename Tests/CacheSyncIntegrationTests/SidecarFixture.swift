import BSONModel
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// A running redis-server, nx-27017 (or the servers in `REDIS_URL` / `MONGODB_URI`) and the config that points the
/// real `cachesync` binary at them, with the docs/ARCHITECTURE.md §3 example collections.
final class SidecarFixture: @unchecked Sendable {
    /// The Redis server, or a cluster's first node (whose key prefix the test's keys use).
    let redisServer: RedisTestServer
    /// The Redis Cluster the sidecar writes to, when the fixture was made with one.
    let cluster: RedisClusterBed?
    let mongoServer: MongoTestServer
    let redis: any RedisClient
    let pool: MongoClientPool
    let httpPort: Int

    init(redis: RedisTestServer.Options = .init(), mongo: MongoTestServer.Options = .init()) throws {
        redisServer = try RedisTestServer(redis)
        cluster = nil
        mongoServer = try MongoTestServer(mongo)
        self.redis = try redisServer.connect()
        pool = try MongoClientPool(uri: mongoServer.uri)
        httpPort = try FreePort.next()
    }

    /// A fixture whose sidecar writes to `cluster` (`redis.cluster` set, every node a seed).
    init(cluster: RedisClusterBed, mongo: MongoTestServer.Options = .init()) throws {
        self.cluster = cluster
        redisServer = cluster.nodes[0]
        mongoServer = try MongoTestServer(mongo)
        redis = cluster.client()
        pool = try MongoClientPool(uri: mongoServer.uri)
        httpPort = try FreePort.next()
    }

    deinit {
        if let cluster { cluster.cleanUp() } else { redisServer.cleanUp() }
        mongoServer.cleanUp()
    }

    /// The database the collections live in.
    var database: String { mongoServer.database }

    /// A namespace in the test database.
    func ns(_ collection: String) -> MongoNamespace {
        MongoNamespace(database: database, collection: collection)
    }

    /// A cache key: the server's key prefix (unique per test on a shared Redis) + `coll:id`.
    func key(_ collection: String, _ id: String) -> String {
        redisServer.keyPrefix + "\(collection):\(id)"
    }

    /// The checkpoint prefix, inside the test's key prefix.
    var checkpointPrefix: String { redisServer.keyPrefix + "cachesync:" }

    /// The `redis:` section for the test server, as the least-privilege user (`RedisTestServer.sidecarURL`):
    /// `rediss://` with its CA (and the client certificate when the
    /// server requires one) for a TLS-only server; `caFile` replaces the CA file.
    func redisSection(caFile: String? = nil) -> String {
        var lines = [
            "redis:",
            "  url: \"\(redisServer.sidecarURL())\"",
            "  keyPrefix: \"\(redisServer.keyPrefix)\"",
        ]
        if let cluster {
            lines.append("  cluster: { nodes: [\(cluster.seedAddresses.map { "\"\($0)\"" }.joined(separator: ", "))] }")
        }
        if let tls = redisServer.options.tls, let options = redisServer.connectionOptions().tls {
            lines += ["  tls:", "    caFile: \"\(caFile ?? options.caFile ?? "")\""]
            if tls.requireClientCertificate, let cert = options.certFile, let key = options.keyFile {
                lines += ["    certFile: \"\(cert)\"", "    keyFile: \"\(key)\""]
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The docs/ARCHITECTURE.md §3 example, pointed at the test servers; `extra` is appended at the top level.
    func config(collections: String? = nil, lease: String = "{ enabled: true, ttl: 3 }", httpPort: Int? = nil,
                redisCAFile: String? = nil, redisSection: String? = nil, extra: String = "") -> String {
        """
        mongodb:
          uri: "\(mongoServer.uri)"
          database: \(database)
        \(redisSection ?? self.redisSection(caFile: redisCAFile))
        http:
          listen: "127.0.0.1:\(httpPort ?? self.httpPort)"
        checkpoint:
          keyPrefix: "\(checkpointPrefix)"
        lease: \(lease)
        defaults:
          ttl:
            base: 300
            tiers:
              - { minAccesses: 1000, ttl: 3600 }
              - { minAccesses: 100,  ttl: 1800 }
              - { minAccesses: 10,   ttl: 900 }
          accessCounts:
            window: 86400
        collections:
        \(collections ?? """
          users:
            strategy: invalidate
          products:
            strategy: update
          sessions:
            strategy: preserve-ttl
            ttl: { base: 3600 }
        """)
        \(extra)
        """
    }

    /// Starts the binary and waits until every watcher has opened its stream.
    func startSidecar(config: String? = nil, instanceId: String = "test-1", collections: Int = 3) throws -> CacheSyncProcess {
        let process = try CacheSyncProcess(config: config ?? self.config(), environment: ["CACHESYNC_INSTANCE_ID": instanceId])
        try process.start()
        let opened = waitUntil(timeout: .seconds(20)) {
            process.log.components(separatedBy: "restarted from now").count - 1
                + process.log.components(separatedBy: "opened from the stored checkpoint").count - 1 >= collections
        }
        if !opened { throw FixtureError("cachesync did not open its streams:\n\(process.log)") }
        return process
    }

    /// Runs a MongoDB write, retrying for a while when the server is (re)starting.
    func retrying(_ write: () throws -> Void) throws {
        var lastError: Error?
        for _ in 0..<50 {
            do {
                return try write()
            } catch {
                lastError = error
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        throw lastError!
    }

    /// The cached text at `key`, or nil.
    func cached(_ key: String) throws -> String? {
        try redis.command(["GET", key]).text
    }

    /// Milliseconds to live of `key` (-2 missing, -1 no expiry).
    func pttl(_ key: String) throws -> Int64 {
        try redis.command(["PTTL", key]).integer ?? -2
    }

    /// The `SyncKeys` key `kind` (`resume`, `leader`, `applied`) of a collection: its namespace a hash tag on a cluster.
    func syncKey(_ kind: String, _ collection: String) -> String {
        checkpointPrefix + "\(kind):" + (cluster == nil ? "\(database).\(collection)" : "{\(database).\(collection)}")
    }

    /// Events applied ever, per the counter written atomically with each checkpoint.
    func appliedEvents(_ collection: String) throws -> Int {
        let reply = try redis.command(["HGET", syncKey("applied", collection), "events"])
        return Int(reply.text ?? "0") ?? 0
    }

    /// Waits until `condition` holds (up to `timeout`; a throw counts as "not yet"), else throws with the
    /// sidecar's log.
    func eventually(_ what: String, _ process: CacheSyncProcess?, timeout: Duration = .seconds(20),
                    _ condition: () throws -> Bool) throws {
        if !waitUntil(timeout: timeout, { (try? condition()) ?? false }) {
            throw FixtureError("timed out waiting for \(what)\n--- cachesync log ---\n\(process?.log.suffix(4000) ?? "")")
        }
    }
}

/// How the fixture's redis-server is reached.
enum RedisTransport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// Plaintext.
    case plain
    /// TLS only (the plaintext port off), the server's certificate checked against the test CA.
    case tls
    /// TLS with a client certificate the server requires.
    case mutualTLS

    /// The server options, with `persistence` when asked.
    func options(persistence: Bool = false) -> RedisTestServer.Options {
        switch self {
        case .plain: .init(persistence: persistence)
        case .tls: .init(persistence: persistence, tls: .init())
        case .mutualTLS: .init(persistence: persistence, tls: .init(requireClientCertificate: true))
        }
    }

    /// The transports a run can test: TLS needs a server of its own.
    static var testable: [RedisTransport] { RedisTestServer.startsOwnServer ? allCases : [.plain] }

    var testDescription: String { rawValue }
}

/// A fixture failure with context.
struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
