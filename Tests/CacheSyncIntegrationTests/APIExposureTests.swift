import BSONModel
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// `http.api`: the read-through API on a listener of its own, behind a bearer token read from a file.
@Suite("Read-through API listener and token", .serialized)
struct APIExposureTests {
    @Test("with http.api the read-through API answers only on its own port; without the token it is 401 and touches neither Redis nor MongoDB; a rotated token takes over")
    func listenerAndToken() throws {
        let apiPort = try FreePort.next()
        let first = "api-token-\(UUID().uuidString.prefix(8))"
        TestSecrets.register(first, as: "the first API token")
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-api-token-\(UUID().uuidString)")
        try (first + "\n").write(to: tokenFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: tokenFile) }
        let harness = try HTTPHarness(collections: "  users:\n    strategy: invalidate", collectionCount: 1, httpConfig: """
              api:
                listen: "127.0.0.1:\(apiPort)"
                tokenFile: "\(tokenFile.path)"
            """)
        defer { harness.stop() }
        #expect(harness.sidecar.log.contains("read-through API listening on 127.0.0.1:\(apiPort) (bearer token required)"))
        let pool = try harness.mongoPool()
        try pool.insertOne(harness.namespace("users"), ["_id": .string("u1"), "name": .string("ada")])
        let redis = try harness.redis.connect()
        let path = "/v1/cache/users/u1"

        // The status routes stay on http.listen, without a token; the read-through API is not there.
        #expect(try harness.get("/readyz").status == 200)
        #expect(try harness.get("/v1/stats").status == 200)
        #expect(try harness.get(path).status == 404, "no read-through on http.listen")
        #expect(HTTPHarness.get(port: apiPort, path: "/metrics")?.status == 404, "no metrics on the API's port")

        for headers in [[:], ["Authorization": "Bearer wrong"], ["Authorization": "Bearer \(first)x"],
                        ["Authorization": first], ["Authorization": "Basic \(first)"]] {
            let reply = HTTPHarness.get(port: apiPort, path: path, headers: headers)
            #expect(reply?.status == 401, "\(headers.keys.sorted())")
            #expect(reply?.headers["www-authenticate"] == "Bearer realm=\"cachesync\"")
        }
        #expect(try redis.command(["EXISTS", "users:u1:access_count", "users:u1", "users:u1:lease"]).integer == 0,
                "a refused request made no Redis call")

        let granted = HTTPHarness.get(port: apiPort, path: path, headers: ["Authorization": "Bearer \(first)"])
        #expect(granted?.status == 200 && granted?.headers["x-cache"] == "MISS", "\(String(describing: granted))")
        #expect(try redis.command(["EXISTS", "users:u1:access_count"]).integer == 1)

        // Rotation as a Kubernetes Secret does it: a new file swapped in under the same name.
        let second = "api-token-\(UUID().uuidString.prefix(8))"
        TestSecrets.register(second, as: "the second API token")
        try second.write(to: tokenFile, atomically: true, encoding: .utf8)
        #expect(waitUntil(timeout: .seconds(10)) {
            HTTPHarness.get(port: apiPort, path: path, headers: ["Authorization": "Bearer \(second)"])?.status == 200
        }, "the rotated token is in use")
        #expect(HTTPHarness.get(port: apiPort, path: path, headers: ["Authorization": "Bearer \(first)"])?.status == 401)
        // A file that disappears keeps the last token: the API neither opens nor locks.
        try FileManager.default.removeItem(at: tokenFile)
        Thread.sleep(forTimeInterval: 1.2)
        #expect(HTTPHarness.get(port: apiPort, path: path)?.status == 401)
        #expect(HTTPHarness.get(port: apiPort, path: path, headers: ["Authorization": "Bearer \(second)"])?.status == 200)
        #expect(TestSecrets.found(in: harness.sidecar.log).isEmpty, "the log holds a token")
    }

    @Test("a request with oversized headers is refused without reaching a route; the next request is served")
    func headerLimits() throws {
        let harness = try HTTPHarness(collections: "  users:\n    strategy: invalidate", collectionCount: 1)
        defer { harness.stop() }
        let huge = HTTPHarness.get(port: harness.httpPort, path: "/v1/cache/users/u1",
                                   headers: ["X-Padding": String(repeating: "a", count: 20 * 1024)])
        #expect(huge == nil || huge?.status == 431 || huge?.status == 400, "\(String(describing: huge?.status))")
        let many = HTTPHarness.get(port: harness.httpPort, path: "/readyz",
                                   headers: Dictionary(uniqueKeysWithValues: (0..<100).map { ("X-H\($0)", "v") }))
        #expect(many == nil || many?.status == 431 || many?.status == 400, "\(String(describing: many?.status))")
        let redis = try harness.redis.connect()
        #expect(try redis.command(["EXISTS", "users:u1:lease", "users:u1:access_count"]).integer == 0,
                "the refused request reached no route")
        #expect(try harness.get("/readyz").status == 200)
    }

    @Test("a token file that cannot be read stops the start with exit 2, naming the field and the file")
    func unreadableTokenFile() throws {
        let missing = "/nonexistent/cachesync-token"
        let config = """
            mongodb: { uri: "mongodb://127.0.0.1:1/?replicaSet=rs0&serverSelectionTimeoutMS=100", database: shop }
            redis: { url: "redis://127.0.0.1:1/0" }
            http: { listen: "127.0.0.1:\(try FreePort.next())", api: { tokenFile: "\(missing)" } }
            collections:
              users: { strategy: invalidate }
            """
        let process = try CacheSyncProcess(config: config)
        try process.start()
        #expect(process.process.waitForExit(timeout: .seconds(10)))
        #expect(process.process.exitStatus == 2)
        #expect(process.log.contains("http.api.tokenFile") && process.log.contains(missing), "\(process.log)")
    }
}
