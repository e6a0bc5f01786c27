import Foundation
import Testing
import TestSupport

extension HTTPAPITests {
    /// Credentials in the configured URIs never reach the logs.
    @Suite("Log redaction", .enabled(if: RedisTestServer.startsOwnServer, "configures an ACL user on its own redis-server"))
    struct HTTPLogRedactionTests {
        @Test("a run with passwords in the Redis and MongoDB URIs logs neither password, in either log format",
              arguments: ["json", "text"])
        func passwordsNeverLogged(format: String) throws {
            let redisPassword = "r3dis-S3cret-\(UUID().uuidString.prefix(6))"
            let mongoPassword = "m0ngo-S3cret-\(UUID().uuidString.prefix(6))"
            TestSecrets.register(redisPassword, as: "the Redis password")
            TestSecrets.register(mongoPassword, as: "the MongoDB password")
            let harness = try HTTPHarness(
                collections: """
                  users:
                    strategy: invalidate
                """,
                collectionCount: 1,
                redisOptions: .init(user: .init(name: "cachesync", password: redisPassword)),
                mongoURI: { "mongodb://app:\(mongoPassword)@127.0.0.1:\($0.port)/?directConnection=true&serverSelectionTimeoutMS=2000" },
                extraArguments: ["--log-format", format],
                waitForStreams: false)
            try harness.mongoPool().insertOne(harness.namespace("users"), ["_id": .string("a")])
            // nx-27017 rejects SCRAM, so MongoDB reads fail with an authentication error that gets logged, and the
            // answer says so without the password.
            let read = try harness.get("/v1/cache/users/a")
            #expect(read.status == 502, "\(read.status) \(read.body)")
            #expect(!read.body.isEmpty && !read.body.contains(mongoPassword), "\(read.body)")
            try harness.redis.stop()
            Thread.sleep(forTimeInterval: 1.5)
            _ = try? harness.get("/v1/cache/users/a")
            _ = try? harness.get("/readyz")
            #expect(harness.sidecar.process.isRunning, "cachesync crashed:\n\(harness.sidecar.log.suffix(3000))")
            harness.stop()
            let log = harness.sidecar.log
            #expect(log.contains("starting"))
            let host = format == "json" ? #""mongodb":"127.0.0.1:\#(harness.mongo.port)""# : "mongodb=127.0.0.1:\(harness.mongo.port)"
            #expect(log.contains(host), "the startup line names the MongoDB host only")
            #expect(!log.contains(redisPassword), "redis password in the log")
            #expect(!log.contains(mongoPassword), "mongodb password in the log")
        }
    }
}
