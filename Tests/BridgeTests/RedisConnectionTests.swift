import RedisBridge
import TestSupport
import Testing

/// Commands, pipelines, databases, binary values and transport errors of `RedisConnection`.
@Suite("RedisConnection against a real redis-server")
struct RedisConnectionTests {
    @Test("a pipeline of 10,000 commands returns every reply, in order")
    func tenThousandCommandPipeline() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let list = server.key("pipeline:list")
            let counter = server.key("pipeline:counter")
            var commands: [[String]] = []
            for index in 0..<10_000 {
                switch index % 3 {
                case 0: commands.append(["RPUSH", list, String(index)])
                case 1: commands.append(["ECHO", "value-\(index)"])
                default: commands.append(["INCR", counter])
                }
            }
            let replies = try connection.pipeline(commands)
            #expect(replies.count == 10_000)
            var expected: [RedisReply] = []
            for index in 0..<10_000 {
                switch index % 3 {
                case 0: expected.append(.integer(Int64(index / 3 + 1)))
                case 1: expected.append(.string(Array("value-\(index)".utf8)))
                default: expected.append(.integer(Int64(index / 3 + 1)))
                }
            }
            let mismatches = zip(replies, expected).enumerated().filter { $0.element.0 != $0.element.1 }
            #expect(mismatches.isEmpty, "first mismatch: \(String(describing: mismatches.first))")
            #expect(try connection.command(["LLEN", list]) == .integer(3_334))
        }
    }

    @Test("an error reply inside a pipeline is an .error value and the connection stays usable")
    func errorReplyInsidePipeline() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let key = server.key("string")
            let replies = try connection.pipeline([["SET", key, "1"], ["LPUSH", key, "x"], ["GET", key]])
            #expect(replies[0] == .status("OK"))
            #expect(replies[1].isError)
            #expect(replies[1].text?.hasPrefix("WRONGTYPE") == true)
            #expect(replies[2] == .string(Array("1".utf8)))
            #expect(connection.isConnected)
            #expect(connection.connectCount == 1)
        }
    }

    @Test("an error reply to a single command throws a server error with its code")
    func singleCommandErrorThrows() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let key = server.key("string")
            _ = try connection.command(["SET", key, "abc"])
            let error = #expect(throws: RedisError.self) { try connection.command(["INCR", key]) }
            #expect(error?.kind == .server)
            #expect(error?.serverCode == "ERR")
            #expect(error?.isRetryable == false)
            #expect(try connection.command(["PING"]) == .status("PONG"))
        }
    }

    @Test("SELECT puts keys in the chosen database only")
    func selectDatabase() throws {
        try withRedisServer { server in
            let inThree = try server.connect(db: 3)
            let inZero = try server.connect(db: 0)
            let key = server.key("selected")
            #expect(try inThree.command(["SET", key, "three"]) == .status("OK"))
            #expect(try inThree.command(["GET", key]) == .string(Array("three".utf8)))
            #expect(try inZero.command(["GET", key]) == .null)
            let info = try inThree.command(["CLIENT", "INFO"]).text ?? ""
            #expect(info.contains(" db=3 "), "CLIENT INFO: \(info)")
            _ = try inThree.command(["DEL", key])
        }
    }

    @Test("keys and values with NUL, CR, LF and non-UTF-8 bytes round-trip unchanged")
    func binarySafeValues() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let key = Array(server.key("bin\0ary\r\n").utf8)
            let value: [UInt8] = [0, 1, 0, 0xFF, 0xFE, 13, 10, 0, 0x80, 0]
            #expect(try connection.command([Array("SET".utf8), key, value]) == .status("OK"))
            let reply = try connection.command([Array("GET".utf8), key])
            #expect(reply == .string(value))
            #expect(reply.text == nil)
            #expect(try connection.command([Array("STRLEN".utf8), key]) == .integer(Int64(value.count)))
            let large = (0..<1_048_576).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let replies = try connection.pipeline([[Array("SET".utf8), key, large], [Array("GET".utf8), key]])
            #expect(replies == [.status("OK"), .string(large)])
            #expect(try connection.command([Array("SET".utf8), key, []]) == .status("OK"))
            #expect(try connection.command([Array("GET".utf8), key]) == .string([]))
        }
    }

    @Test("nested array replies, nil elements and negative integers are copied faithfully")
    func replyShapes() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let a = server.key("a")
            let missing = server.key("missing")
            _ = try connection.command(["SET", a, "1"])
            #expect(try connection.command(["MGET", a, missing]) == .array([.string(Array("1".utf8)), .null]))
            #expect(try connection.command(["DECRBY", a, "5"]) == .integer(-4))
            #expect(try connection.command(["GET", missing]) == .null)
            let nested = try connection.command(["EVAL", "return {1, {2, 'x'}, {}}", "0"])
            #expect(nested == .array([.integer(1), .array([.integer(2), .string(Array("x".utf8))]), .array([])]))
        }
    }

    @Test("a command without arguments is refused before anything is sent")
    func emptyCommandIsRefused() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let error = #expect(throws: RedisError.self) { try connection.command([String]()) }
            #expect(error?.kind == .invalidCommand)
            let pipelineError = #expect(throws: RedisError.self) { try connection.pipeline([["PING"], []]) }
            #expect(pipelineError?.kind == .invalidCommand)
            #expect(try connection.command(["PING"]) == .status("PONG"))
            #expect(connection.connectCount == 1)
        }
    }

    @Test("connecting where nothing listens fails with a retryable connection-refused error")
    func connectionRefused() throws {
        let port = try FreePort.next()
        let error = #expect(throws: RedisError.self) {
            try RedisConnection(options: RedisConnectionOptions(host: "127.0.0.1", port: port))
        }
        #expect(error?.kind == .connectionRefused)
        #expect(error?.isRetryable == true)
        #expect(error?.description.contains("127.0.0.1:\(port)") == true)
    }

    @Test("a reply slower than the command timeout fails as a retryable timeout; the next call reconnects")
    func commandTimeout() throws {
        try withRedisServer { server in
            var options = server.connectionOptions()
            options.commandTimeout = .milliseconds(300)
            let connection = try RedisConnection(options: options)
            let clock = ContinuousClock()
            let started = clock.now
            let error = #expect(throws: RedisError.self) {
                try connection.command(["BLPOP", server.key("empty-list"), "3"])
            }
            #expect(clock.now - started < .seconds(2))
            #expect(error?.kind == .timeout)
            #expect(error?.isRetryable == true)
            #expect(!connection.isConnected)
            #expect(try connection.command(["PING"]) == .status("PONG"))
            #expect(connection.connectCount == 2)
        }
    }

    @Test("redis:// URLs give host, port, db and credentials, and print without the password")
    func urlOptions() throws {
        let options = try #require(RedisConnectionOptions(url: "redis://alice:pa%3Ass@cache.local:6380/4"))
        #expect(options.host == "cache.local")
        #expect(options.port == 6380)
        #expect(options.db == 4)
        #expect(options.user == "alice")
        #expect(options.password == "pa:ss")
        #expect(options.description == "redis://alice:***@cache.local:6380/4")
        #expect(RedisConnectionOptions(url: "http://localhost") == nil)
        #expect(RedisConnectionOptions(url: "redis://localhost/x") == nil)
        #expect(RedisConnectionOptions(url: "redis://localhost")?.port == 6379)
    }
}
