import Foundation
import MongoBridge
import Testing
import TestSupport

/// One HTTP answer, as the tests read it.
struct HTTPReply: Sendable {
    /// Status code.
    var status: Int
    /// Header fields, names lowercased.
    var headers: [String: String]
    /// The body as text.
    var body: String

    /// The body parsed as a JSON object.
    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }
}

/// The HTTP API suites, run one test at a time: they start servers and measure time-bound behaviour.
@Suite("HTTP API", .serialized)
struct HTTPAPITests {}

/// A redis-server, an nx-27017 and the real `cachesync run` binary with an HTTP port, for one test.
final class HTTPHarness: @unchecked Sendable {
    /// The Redis server, or the first node of `cluster`.
    let redis: RedisTestServer
    /// The Redis Cluster the sidecar uses, when the harness was made with one.
    let cluster: RedisClusterBed?
    /// The MongoDB wire server.
    let mongo: MongoTestServer
    /// The sidecar's HTTP port.
    let httpPort: Int
    /// The running binary.
    let sidecar: CacheSyncProcess

    /// Starts the servers and the binary with `collections` (YAML under `collections:`, indented two spaces) and
    /// waits until the HTTP API listens and, with `waitForStreams`, every collection's stream is open. `httpConfig`
    /// is added under `http:` (indented two spaces).
    init(collections: String, collectionCount: Int, redisOptions: RedisTestServer.Options = .init(),
         mongoURI: ((MongoTestServer) -> String)? = nil, environment: [String: String] = [:],
         extraConfig: String = "", httpConfig: String = "", extraArguments: [String] = [],
         waitForStreams: Bool = true, cluster: RedisClusterBed? = nil) throws {
        self.cluster = cluster
        redis = try cluster?.nodes[0] ?? RedisTestServer(redisOptions)
        mongo = try MongoTestServer()
        httpPort = try FreePort.next()
        let config = """
            mongodb:
              uri: "\(mongoURI?(mongo) ?? mongo.uri)"
              database: \(mongo.database)
            redis:
              url: "\(redis.sidecarURL())"
            \(cluster.map { "  cluster: { nodes: [\($0.seedAddresses.map { "\"\($0)\"" }.joined(separator: ", "))] }" } ?? "")
            http:
              listen: "127.0.0.1:\(httpPort)"
            \(httpConfig)
            lease:
              ttl: 2
            \(extraConfig)
            collections:
            \(collections)
            """
        sidecar = try CacheSyncProcess(config: config, environment: environment, extraArguments: extraArguments)
        try sidecar.start()
        let ready = waitUntil(timeout: .seconds(20)) {
            (!waitForStreams || self.sidecar.log.components(separatedBy: "watching from now").count - 1 >= collectionCount)
                && self.sidecar.log.contains("HTTP API listening")
        }
        guard ready else {
            throw HarnessError(message: "cachesync did not start; its log:\n\(sidecar.log)")
        }
    }

    /// Stops the binary and the servers.
    func stop() {
        sidecar.process.stop()
        if let cluster { cluster.cleanUp() } else { redis.cleanUp() }
        mongo.cleanUp()
    }

    /// A client pool on the test's MongoDB.
    func mongoPool() throws -> MongoClientPool {
        try MongoClientPool(uri: mongo.uri)
    }

    /// The namespace of `collection` in the test's database.
    func namespace(_ collection: String) -> MongoNamespace {
        MongoNamespace(database: mongo.database, collection: collection)
    }

    /// `/v1/stats` figures of one collection (`db.coll` of the test's database).
    func stats(_ collection: String) throws -> [String: Any] {
        let all = try get("/v1/stats").json?["collections"] as? [String: Any]
        return all?["\(mongo.database).\(collection)"] as? [String: Any] ?? [:]
    }

    /// Waits until the sidecar has received `count` events on `collection`; `false` on timeout.
    func waitForEvents(_ collection: String, atLeast count: Int, timeout: Duration = .seconds(30)) -> Bool {
        waitUntil(timeout: timeout) { ((try? self.stats(collection))?["events"] as? Int ?? 0) >= count }
    }

    /// `GET path` on the sidecar's HTTP port.
    func get(_ path: String) throws -> HTTPReply {
        guard let reply = HTTPHarness.get(port: httpPort, path: path) else {
            throw HarnessError(message: "GET \(path) failed; cachesync log:\n\(sidecar.log)")
        }
        return reply
    }

    /// `GET path` on 127.0.0.1:`port` with a fresh connection and `headers`; `nil` when the request fails.
    static func get(port: Int, path: String, headers: [String: String] = [:],
                    timeout: Duration = .seconds(10)) -> HTTPReply? {
        guard let socket = TCPSocket(connectingTo: port, timeout: timeout) else { return nil }
        defer { socket.close() }
        return get(on: socket, path: path, headers: headers.merging(["Connection": "close"]) { $1 })
    }

    /// `GET path` with `headers` on an open connection (kept alive unless `headers` say otherwise), and its reply.
    static func get(on socket: TCPSocket, path: String, headers: [String: String] = [:]) -> HTTPReply? {
        let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(extra)\r\n"
        guard socket.write(Array(request.utf8)) else { return nil }
        // One reply answers one request, so what arrives is its head and the start of its body, nothing more.
        var received: [UInt8] = []
        var headEnd: Int?
        while headEnd == nil {
            guard let chunk = socket.read(upTo: 65536), received.count < 65536 else { return nil }
            received += chunk
            headEnd = received.indices.dropLast(3).first { received[$0..<$0 + 4].elementsEqual([13, 10, 13, 10]) }
        }
        let head = received[..<headEnd!]
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() where line.contains(":") {
            let parts = line.split(separator: ":", maxSplits: 1)
            headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        var body = Array(received[(headEnd! + 4)...])
        if body.count < length {
            guard let rest = socket.read(exactly: length - body.count) else { return nil }
            body += rest
        }
        let text = String(decoding: body, as: UTF8.self)
        for secret in TestSecrets.found(in: text) {
            Issue.record("GET \(path) answered with \(secret)")
        }
        return HTTPReply(status: status, headers: headers, body: text)
    }
}

/// A harness step failed; the message carries the sidecar's log.
struct HarnessError: Error, CustomStringConvertible {
    /// What failed.
    let message: String
    /// Same as `message`.
    var description: String { message }
}
