import Foundation
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

    @Test("a password file is read at every connect: a rotated password is used at the next reconnect, never shown")
    func passwordFileRotation() throws {
        try withRedisServer(.init(password: "first-Secret-1")) { server in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("cachesync-pw-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: file) }
            try "first-Secret-1\n".write(to: file, atomically: true, encoding: .utf8)
            var options = RedisConnectionOptions(host: server.host, port: server.port)
            options.passwordFile = file.path
            #expect(!"\(options)".contains("first-Secret-1") && "\(options)".contains(":***@"))
            let connection = try RedisConnection(options: options)
            #expect(try connection.command(["PING"]) == .status("PONG"))

            // Rotate: the server takes the new password, the file holds it, existing connections are dropped.
            _ = try connection.command(["CONFIG", "SET", "requirepass", "second-Secret-2"])
            try "second-Secret-2".write(to: file, atomically: true, encoding: .utf8)
            _ = try? connection.command(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"])
            _ = try? connection.command(["PING"])
            #expect(try connection.command(["PING"]) == .status("PONG"), "reconnected with the rotated password")
            #expect(connection.connectCount == 2)

            // A password the server refuses fails as authentication, without the password in the message.
            try "wrong-Secret-3".write(to: file, atomically: true, encoding: .utf8)
            connection.close()
            let error = #expect(throws: RedisError.self) { try connection.command(["PING"]) }
            #expect(error?.kind == .authentication)
            #expect(error.map { "\($0)".contains("wrong-Secret-3") } == false)
            try FileManager.default.removeItem(at: file)
            let missing = #expect(throws: RedisError.self) { try connection.command(["PING"]) }
            #expect(missing?.message.contains("cannot read the password file") == true)
        }
    }
}
