import Glibc
import RedisBridge
import TestSupport
import Testing

/// A connection survives its server being killed and restarted; the test bed restarts on the same port.
@Suite("Reconnecting after the server dies", .enabled(if: RedisTestServer.startsOwnServer, "needs its own redis-server"))
struct RedisReconnectTests {
    @Test("a redis-server killed with SIGKILL and restarted on the same port is reconnected by the same connection")
    func killAndRestart() throws {
        try withRedisServer(.init(persistence: true, user: .init(name: "app", password: "pw-123"))) { server in
            let connection = try server.connect(db: 1)
            let key = server.key("survivor")
            #expect(try connection.command(["SET", key, "still here"]) == .status("OK"))
            let port = server.port

            try server.kill()
            #expect(!server.isRunning)
            let error = #expect(throws: RedisError.self) { try connection.command(["GET", key]) }
            #expect(error?.isRetryable == true)
            #expect(!connection.isConnected)
            let whileDown = #expect(throws: RedisError.self) { try connection.command(["PING"]) }
            #expect(whileDown?.kind == .connectionRefused)

            try server.start()
            #expect(server.port == port)
            #expect(try connection.command(["GET", key]) == .string(Array("still here".utf8)))
            #expect(try connection.command(["ACL", "WHOAMI"]) == .string(Array("app".utf8)))
            let info = try connection.command(["CLIENT", "INFO"]).text ?? ""
            #expect(info.contains(" db=1 "), "re-SELECT missing: \(info)")
            #expect(connection.connectCount == 2)
        }
    }

    @Test("a pipeline on a connection whose server was killed throws a retryable error, then works after restart")
    func pipelineAcrossRestart() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            _ = try connection.pipeline([["SET", server.key("a"), "1"]])
            try server.kill()
            let error = #expect(throws: RedisError.self) {
                try connection.pipeline((0..<1_000).map { ["SET", server.key("k\($0)"), String(repeating: "x", count: 1_000)] })
            }
            #expect(error?.isRetryable == true)
            try server.start()
            let replies = try connection.pipeline([["SET", server.key("b"), "2"], ["GET", server.key("b")]])
            #expect(replies == [.status("OK"), .string(Array("2".utf8))])
        }
    }

    @Test("a clean restart keeps the port, and cleanup leaves no redis-server process or directory")
    func restartAndCleanup() throws {
        let server = try RedisTestServer()
        let port = server.port
        let directory = try #require(server.directory)
        try server.restart()
        #expect(server.port == port)
        #expect(try server.connect().command(["PING"]) == .status("PONG"))
        #expect(FreePort.accepts(port))
        server.cleanUp()
        #expect(!server.isRunning)
        #expect(!FreePort.accepts(port))
        #expect(access(directory.path, F_OK) != 0)
    }
}
