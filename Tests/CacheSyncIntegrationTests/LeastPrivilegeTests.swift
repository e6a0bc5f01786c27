import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// The README's least-privilege Redis user, and credentials from files. (Every sidecar of the integration suite
/// connects as `RedisTestServer.leastPrivilegeUser` with its config's rule; these tests check the rule itself.)
@Suite("Least privilege and credentials", .serialized,
       .enabled(if: RedisTestServer.startsOwnServer, "grants ACL rules on its own redis-server"))
struct LeastPrivilegeTests {
    private static let collections = """
          users:
            strategy: invalidate
          products:
            strategy: update
            keyTemplate: "v1:{coll}:{id}:json"
          sessions:
            strategy: preserve-ttl
            ttl: { base: 3600 }
        """

    @Test("under exactly the rule check-config --acl prints, the strategies, read-through and verify work, the ACL log stays empty, and nothing else is allowed")
    func exactRule() throws {
        let f = try SidecarFixture()
        let config = f.config(collections: Self.collections)
        let file = try temporaryFile("cachesync.yaml", config)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let printed = try CacheSyncProcess.runCommand(["check-config", "--acl", "--config", file])
        #expect(printed.status == 0, "\(printed.output)")
        let head = "ACL SETUSER \(RedisTestServer.leastPrivilegeUser) on >PASSWORD "
        let line = try #require(printed.output.split(separator: "\n").first { $0.hasPrefix(head) }, "\(printed.output)")
        let rule = String(line.dropFirst(head.count))
        let prefix = f.redisServer.keyPrefix
        #expect(rule.hasPrefix("resetkeys ~\(prefix)cachesync:* ~\(prefix)sessions:* ~\(prefix)users:* "
                               + "~\(prefix)v1:products:*:json* resetchannels -@all +"), "\(rule)")
        try f.redisServer.grantLeastPrivilege(rule: rule)

        let sidecar = try f.startSidecar(config: config)
        try f.pool.insertOne(f.ns("users"), ["_id": .string("u1"), "name": .string("ada")])
        #expect(HTTPHarness.get(port: f.httpPort, path: "/v1/cache/users/u1")?.headers["x-cache"] == "MISS")
        #expect(HTTPHarness.get(port: f.httpPort, path: "/v1/cache/users/u1")?.headers["x-cache"] == "HIT")
        _ = try f.pool.updateOne(f.ns("users"), filter: ["_id": .string("u1")], update: ["$set": .document(["name": .string("grace")])])
        try f.eventually("the user invalidated", sidecar) { try f.cached(f.key("users", "u1")) == nil }
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("the product written", sidecar) { try f.cached(prefix + "v1:products:1:json") != nil }
        try f.pool.insertOne(f.ns("sessions"), ["_id": .string("s1"), "v": .int32(1)])
        #expect(HTTPHarness.get(port: f.httpPort, path: "/v1/cache/sessions/s1")?.status == 200)
        _ = try f.pool.updateOne(f.ns("sessions"), filter: ["_id": .string("s1")], update: ["$set": .document(["v": .int32(2)])])
        try f.eventually("the session updated in place", sidecar) {
            try f.cached(f.key("sessions", "s1"))?.contains("\"v\":2") == true
        }
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "\(verify.output)")
        #expect(HTTPHarness.get(port: f.httpPort, path: "/readyz")?.status == 200)

        let denied = try f.redis.command(["ACL", "LOG"]).array ?? []
        #expect(denied.isEmpty, "commands the rule refused: \(denied)")
        let least = try RedisConnection(options: .init(host: "127.0.0.1", port: f.redisServer.port,
                                                       user: RedisTestServer.leastPrivilegeUser,
                                                       password: RedisTestServer.leastPrivilegePassword))
        for command in [["FLUSHALL"], ["GET", "other:1"], ["SET", prefix + "elsewhere", "x"], ["CONFIG", "GET", "*"],
                        ["PUBLISH", "channel", "x"], ["KEYS", "*"]] {
            #expect(throws: RedisError.self, "\(command) is refused") { _ = try least.command(command) }
        }
        withExtendedLifetime(sidecar) {}
    }

    @Test("a password rotated in its file is used at the next reconnect; a wrong one shows on /readyz; nothing printed holds a secret")
    func passwordFileRotation() throws {
        let f = try SidecarFixture()
        let user = RedisTestServer.leastPrivilegeUser
        let passwordFile = try temporaryFile("redis-password", RedisTestServer.leastPrivilegePassword + "\n")
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        let section = """
            redis:
              url: "redis://\(user)@127.0.0.1:\(f.redisServer.port)/0"
              keyPrefix: "\(f.redisServer.keyPrefix)"
              passwordFile: "\(passwordFile)"
            """
        let sidecar = try f.startSidecar(config: f.config(redisSection: section))
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("applied with the first password", sidecar) { try f.cached(f.key("products", "1")) != nil }

        // Rotation as with a Kubernetes Secret: the server takes the new password, the file follows, and the
        // connections in use end (as a restarted Redis would end them).
        let rotated = "rotated-\(UUID().uuidString.prefix(8))?#%"
        TestSecrets.register(rotated, as: "the rotated password")
        _ = try f.redis.command(["ACL", "SETUSER", user, "resetpass", ">" + rotated])
        try rotated.write(toFile: passwordFile, atomically: true, encoding: .utf8)
        _ = try f.redis.command(["CLIENT", "KILL", "USER", user])
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(2), "v": .int32(1)])
        try f.eventually("applied with the rotated password", sidecar, timeout: .seconds(30)) {
            try f.cached(f.key("products", "2")) != nil
        }
        try f.eventually("ready with the rotated password", sidecar) {
            HTTPHarness.get(port: f.httpPort, path: "/readyz")?.status == 200
        }

        let wrong = "wrong-\(UUID().uuidString.prefix(8))"
        TestSecrets.register(wrong, as: "the wrong password")
        try wrong.write(toFile: passwordFile, atomically: true, encoding: .utf8)
        _ = try f.redis.command(["CLIENT", "KILL", "USER", user])
        try f.eventually("/readyz names the refused password", sidecar, timeout: .seconds(30)) {
            guard let reply = HTTPHarness.get(port: f.httpPort, path: "/readyz") else { return false }
            return reply.status == 503 && reply.body.lowercased().contains("auth")
        }
        try rotated.write(toFile: passwordFile, atomically: true, encoding: .utf8)
        try f.eventually("ready again once the file is right", sidecar, timeout: .seconds(30)) {
            HTTPHarness.get(port: f.httpPort, path: "/readyz")?.status == 200
        }

        // Everything the sidecar printed or served: none holds a password or a private key.
        let served = ["/metrics", "/v1/stats", "/readyz", "/healthz"].map {
            HTTPHarness.get(port: f.httpPort, path: $0)?.body ?? ""
        }
        let checked = try CacheSyncProcess.runCommand(["check-config", "--config", sidecar.configURL.path])
        for (source, text) in zip(["log", "/metrics", "/v1/stats", "/readyz", "/healthz", "check-config"],
                                  [sidecar.log] + served + [checked.output]) {
            #expect(TestSecrets.found(in: text).isEmpty, "\(source) printed \(TestSecrets.found(in: text))")
        }
        #expect(sidecar.log.contains(passwordFile), "the log names the password file")
        withExtendedLifetime(sidecar) {}
    }

    @Test("check-config and a refused start print no secret: URL password, sentinel password, key file contents")
    func secretsInConfigOutput() throws {
        let certificates = try TestCertificates.shared()
        let urlPassword = "url-Secret-\(UUID().uuidString.prefix(6))"
        let sentinelPassword = "sentinel-Secret-\(UUID().uuidString.prefix(6))"
        TestSecrets.register(urlPassword, as: "the URL's password")
        TestSecrets.register(sentinelPassword, as: "the sentinels' password")
        let config = """
            mongodb:
              uri: "mongodb://app:\(urlPassword)@127.0.0.1:1/?replicaSet=rs0"
              database: shop
            redis:
              url: "rediss://app:\(urlPassword)@mymaster/0"
              tls: { caFile: "\(certificates.caFile)", certFile: "\(certificates.clientCertFile)", keyFile: "\(certificates.clientKeyFile)" }
              sentinel: { masterName: mymaster, nodes: ["127.0.0.1:1"], username: s, password: "\(sentinelPassword)" }
            collections:
              users: { strategy: invalidate }
            """
        let file = try temporaryFile("cachesync.yaml", config)
        defer { try? FileManager.default.removeItem(atPath: file) }
        for arguments in [["check-config"], ["check-config", "--acl"], ["verify"]] {
            let result = try CacheSyncProcess.runCommand(arguments + ["--config", file], timeout: .seconds(30))
            #expect(TestSecrets.found(in: result.output).isEmpty,
                    "\(arguments) printed \(TestSecrets.found(in: result.output))")
            #expect(!result.output.isEmpty)
        }
        let broken = try temporaryFile("broken.yaml", config.replacingOccurrences(of: "strategy: invalidate",
                                                                                 with: "strategy: nope"))
        defer { try? FileManager.default.removeItem(atPath: broken) }
        let refused = try CacheSyncProcess.runCommand(["check-config", "--config", broken])
        #expect(refused.status == 2 && refused.output.contains("strategy"), "\(refused.output)")
        #expect(TestSecrets.found(in: refused.output).isEmpty, "\(TestSecrets.found(in: refused.output))")
    }

    private func temporaryFile(_ name: String, _ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-\(UUID().uuidString)-\(name)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}
