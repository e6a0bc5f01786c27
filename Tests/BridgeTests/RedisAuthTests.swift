import RedisBridge
import TestSupport
import Testing

/// AUTH with ACL users and `requirepass`, and that no error message carries a password.
@Suite("Redis AUTH with ACL users and passwords", .enabled(if: RedisTestServer.startsOwnServer, "needs its own redis-server"))
struct RedisAuthTests {
    /// The ACL user these tests configure.
    static let user = RedisTestServer.Options.User(name: "cachesync", password: "s3cret-P@ss w0rd")

    @Test("an ACL user authenticates with AUTH user password")
    func aclUserAuthenticates() throws {
        try withRedisServer(.init(user: Self.user)) { server in
            let connection = try server.connect(db: 2)
            #expect(try connection.command(["ACL", "WHOAMI"]) == .string(Array("cachesync".utf8)))
            #expect(try connection.command(["SET", server.key("k"), "v"]) == .status("OK"))
        }
    }

    @Test("a wrong password fails as an authentication error that does not contain the password")
    func wrongPassword() throws {
        try withRedisServer(.init(user: Self.user)) { server in
            var options = server.connectionOptions()
            options.password = "wrong-Secret-42"
            let error = #expect(throws: RedisError.self) { try RedisConnection(options: options) }
            #expect(error?.kind == .authentication)
            #expect(error?.isRetryable == false)
            #expect(error?.message.contains("WRONGPASS") == true)
            let everything = "\(String(describing: error)) \(error?.message ?? "") \(options)"
            #expect(!everything.contains("wrong-Secret-42"))
            #expect(!everything.contains(Self.user.password))
        }
    }

    @Test("without credentials a command fails with NOAUTH as an authentication error")
    func missingCredentials() throws {
        try withRedisServer(.init(user: Self.user)) { server in
            let connection = try RedisConnection(options: RedisConnectionOptions(host: server.host, port: server.port))
            let error = #expect(throws: RedisError.self) { try connection.command(["GET", server.key("k")]) }
            #expect(error?.kind == .authentication)
            #expect(error?.serverCode == "NOAUTH")
        }
    }

    @Test("a requirepass password alone authenticates with AUTH password")
    func passwordOnly() throws {
        try withRedisServer(.init(password: "only-a-password")) { server in
            let connection = try server.connect()
            #expect(try connection.command(["ACL", "WHOAMI"]) == .string(Array("default".utf8)))
            var wrong = server.connectionOptions()
            wrong.password = "nope-not-it"
            let error = #expect(throws: RedisError.self) { try RedisConnection(options: wrong) }
            #expect(error?.kind == .authentication)
            #expect(error.map { "\($0)".contains("nope-not-it") } == false)
        }
    }
}
