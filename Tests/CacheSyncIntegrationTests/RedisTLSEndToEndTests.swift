import BSONModel
import Foundation
import MongoBridge
import Testing
import TestSupport

/// The real binary against a TLS-only redis-server: the read-through API, `verify`, and a wrong CA shown on
/// `/readyz` and retried until the CA file is fixed (the strategies and restart-resume run over TLS in
/// `StrategyEndToEndTests`).
@Suite("Redis over TLS end to end", .serialized,
       .enabled(if: RedisTestServer.startsOwnServer, "needs its own TLS-only redis-server"))
struct RedisTLSEndToEndTests {
    @Test("read-through answers MISS then HIT, verify finds the cache consistent, /readyz is 200",
          arguments: [RedisTransport.tls, .mutualTLS])
    func readThroughAndVerify(_ transport: RedisTransport) throws {
        let f = try SidecarFixture(redis: transport.options())
        let sidecar = try f.startSidecar()
        try f.pool.insertOne(f.ns("users"), ["_id": .string("u1"), "name": .string("ada")])
        let miss = HTTPHarness.get(port: f.httpPort, path: "/v1/cache/users/u1")
        #expect(miss?.status == 200 && miss?.headers["x-cache"] == "MISS", "\(String(describing: miss))")
        #expect(miss?.body == #"{"_id":"u1","name":"ada"}"#)
        let hit = HTTPHarness.get(port: f.httpPort, path: "/v1/cache/users/u1")
        #expect(hit?.headers["x-cache"] == "HIT")
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(1), "v": .int32(1)])
        try f.eventually("product cached", sidecar) { try f.cached(f.key("products", "1")) != nil }
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "verify over TLS:\n\(verify.output)")
        #expect(HTTPHarness.get(port: f.httpPort, path: "/readyz")?.status == 200)
        #expect(sidecar.log.contains("\"redisTLS\":\"true\""))
        withExtendedLifetime(sidecar) {}
    }

    @Test("a CA that does not sign the server's certificate shows on /readyz with the reason; fixing the file heals it")
    func wrongCAIsRetried() throws {
        let f = try SidecarFixture(redis: RedisTransport.tls.options())
        let certificates = try TestCertificates.shared()
        let caFile = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-ca-\(UUID().uuidString).crt")
        defer { try? FileManager.default.removeItem(at: caFile) }
        try FileManager.default.copyItem(atPath: certificates.otherCAFile, toPath: caFile.path)
        let sidecar = try CacheSyncProcess(config: f.config(redisCAFile: caFile.path),
                                           environment: ["CACHESYNC_INSTANCE_ID": "tls-1"])
        try sidecar.start()
        try f.eventually("/readyz names the TLS failure", sidecar) {
            guard let reply = HTTPHarness.get(port: f.httpPort, path: "/readyz") else { return false }
            return reply.status == 503 && reply.body.contains("does not verify")
        }
        #expect(sidecar.log.contains("does not verify"), "the log names the reason too")
        // The CA file is read at every connect: the right CA ends the retries without a restart.
        try FileManager.default.removeItem(at: caFile)
        try FileManager.default.copyItem(atPath: certificates.caFile, toPath: caFile.path)
        try f.eventually("ready once the CA is right", sidecar, timeout: .seconds(30)) {
            HTTPHarness.get(port: f.httpPort, path: "/readyz")?.status == 200
        }
        try f.pool.insertOne(f.ns("products"), ["_id": .int32(7), "v": .int32(1)])
        try f.eventually("applied over TLS", sidecar) { try f.cached(f.key("products", "7")) != nil }
        withExtendedLifetime(sidecar) {}
    }
}
