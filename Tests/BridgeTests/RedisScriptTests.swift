import RedisBridge
import TestSupport
import Testing

/// `RedisScript` names scripts by SHA-1 and falls back from EVALSHA to EVAL.
@Suite("RedisScript: EVALSHA with the NOSCRIPT fallback")
struct RedisScriptTests {
    @Test("the script name is the SHA-1 of its source, as the server computes it")
    func shaMatchesServer() throws {
        #expect(RedisScript("abc").sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(RedisScript("").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        try withRedisServer { server in
            let connection = try server.connect()
            let source = "return {KEYS[1], ARGV[1], #ARGV} -- " + String(repeating: "é", count: 100)
            let loaded = try connection.command(["SCRIPT", "LOAD", source])
            #expect(loaded.text == RedisScript(source).sha1)
        }
    }

    @Test("an uncached script falls back to EVAL, and later runs use EVALSHA")
    func noscriptFallback() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let script = RedisScript("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])")
            _ = try connection.command(["SCRIPT", "FLUSH"])
            if server.isManaged { _ = try connection.command(["CONFIG", "RESETSTAT"]) }
            #expect(try connection.command(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(0)]))

            let key = server.key("scripted")
            #expect(try script.run(on: connection, keys: [key], arguments: ["one"]) == .string(Array("one".utf8)))
            #expect(try connection.command(["SCRIPT", "EXISTS", script.sha1]) == .array([.integer(1)]))
            #expect(try script.run(on: connection, keys: [key], arguments: ["two"]) == .string(Array("two".utf8)))

            if server.isManaged {
                let stats = try connection.command(["INFO", "commandstats"]).text ?? ""
                #expect(stats.contains("cmdstat_eval:calls=1,"), "\(stats)")
                #expect(stats.contains("cmdstat_evalsha:calls=2,"), "\(stats)")
            }
        }
    }

    @Test("binary-safe keys and arguments reach the script unchanged")
    func binaryArguments() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let script = RedisScript("return {KEYS[1], ARGV[1], #ARGV}")
            let key = Array(server.key("k\0").utf8)
            let argument: [UInt8] = [0, 0xFF, 0]
            let reply = try script.run(on: connection, keys: [key], arguments: [argument, []])
            #expect(reply == .array([.string(key), .string(argument), .integer(2)]))
        }
    }

    @Test("an error raised inside the script throws a server error carrying its text")
    func scriptError() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let script = RedisScript("return redis.error_reply('FENCED epoch 3 is stale')")
            let error = #expect(throws: RedisError.self) { try script.run(on: connection) }
            #expect(error?.kind == .server)
            #expect(error?.serverCode == "FENCED")
            #expect(connection.isConnected)
        }
    }
}
