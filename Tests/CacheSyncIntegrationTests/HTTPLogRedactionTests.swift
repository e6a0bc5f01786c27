import Foundation
import Testing
import TestSupport

extension HTTPAPITests {
    /// Credentials in the configured URIs never reach the logs.
    @Suite("Log redaction")
    struct HTTPLogRedactionTests {
        @Test("a run with passwords in the Redis and MongoDB URIs logs neither password")
        func passwordsNeverLogged() throws {
            let redisPassword = "r3dis-S3cret-\(UUID().uuidString.prefix(6))"
            let mongoPassword = "m0ngo-S3cret-\(UUID().uuidString.prefix(6))"
            let harness = try HTTPHarness(
                collections: """
                  users:
                    strategy: invalidate
                """,
                collectionCount: 1,
                redisOptions: .init(user: .init(name: "cachesync", password: redisPassword)),
                mongoURI: { "mongodb://app:\(mongoPassword)@127.0.0.1:\($0.port)/?directConnection=true&serverSelectionTimeoutMS=5000" })
            try harness.mongoPool().insertOne(harness.namespace("users"), ["_id": .string("a")])
            #expect(try harness.get("/v1/cache/users/a").status == 200)
            #expect(try harness.get("/v1/cache/users/missing").status == 404)
            try harness.redis.stop()
            Thread.sleep(forTimeInterval: 1.5)
            _ = try? harness.get("/v1/cache/users/a")
            _ = try? harness.get("/readyz")
            harness.stop()
            let log = harness.sidecar.log
            #expect(log.contains("cachesync starting") || log.contains("starting"))
            #expect(log.contains("redis"), "the log should mention redis errors after the stop")
            #expect(!log.contains(redisPassword), "redis password in the log")
            #expect(!log.contains(mongoPassword), "mongodb password in the log")
        }
    }
}
