import Foundation
import RedisBridge
import TestSupport
import Testing

/// `RedisConnection` over TLS against a TLS-only redis-server (plaintext port off): commands, pipelines,
/// transactions sent ahead and large replies; and each misconfiguration a clear `.tls` error, with no plaintext
/// attempt (the server would log a "wrong version number" for one).
@Suite("Redis over TLS", .enabled(if: RedisTestServer.startsOwnServer, "needs its own TLS-only redis-server"))
struct RedisTLSTests {
    @Test("commands, a pipeline, a guarded transaction sent ahead and a 1 MiB value all work over TLS")
    func everythingWorks() throws {
        try withRedisServer(.init(tls: .init())) { server in
            let connection = try server.connect()
            #expect(try connection.command(["PING"]) == .status("PONG"))
            let big = String(repeating: "x", count: 1 << 20)
            #expect(try connection.command(["SET", server.key("big"), big]) == .status("OK"))
            #expect(try connection.command(["GET", server.key("big")]).text == big)
            let replies = try connection.pipeline([["SET", server.key("a"), "1"], ["INCR", server.key("a")], ["GET", server.key("a")]])
            #expect(replies.last?.text == "2")
            _ = try connection.command(["SET", server.key("lease"), "me"])
            var batch = RedisCommandBatch()
            batch.append("SET", server.key("b"), "2")
            let guardKey = (key: Array(server.key("lease").utf8), value: Array("me".utf8))
            #expect(try connection.sendTransaction(batch, onlyIf: guardKey))
            #expect(try connection.awaitTransaction() == 1)
            #expect(try connection.sendTransaction(batch, onlyIf: guardKey), "the guard sent ahead holds")
            #expect(try connection.awaitTransaction() == 1)
            #expect(try connection.command(["GET", server.key("b")]).text == "2")
        }
    }

    @Test("a client certificate is sent when the server requires one")
    func mutualTLS() throws {
        try withRedisServer(.init(tls: .init(requireClientCertificate: true))) { server in
            let connection = try server.connect()
            #expect(try connection.command(["PING"]) == .status("PONG"))
        }
    }

    @Test("a missing client certificate is a clear TLS error")
    func missingClientCertificate() throws {
        try withRedisServer(.init(tls: .init(requireClientCertificate: true))) { server in
            var options = server.connectionOptions()
            options.tls?.certFile = nil
            options.tls?.keyFile = nil
            let error = #expect(throws: RedisError.self) { try RedisConnection(options: options).command(["PING"]) }
            #expect(error?.kind == .tls)
            #expect(error?.message.contains("client certificate") == true, "\(String(describing: error))")
            #expect(!server.log.contains("wrong version number"), "a plaintext attempt reached the server")
        }
    }

    @Test("a server certificate from another CA is refused, naming the reason; no plaintext attempt follows")
    func wrongCA() throws {
        try withRedisServer(.init(tls: .init())) { server in
            var options = server.connectionOptions()
            options.tls?.caFile = try TestCertificates.shared().otherCAFile
            let error = #expect(throws: RedisError.self) { try RedisConnection(options: options) }
            #expect(error?.kind == .tls)
            #expect(error?.isRetryable == false)
            #expect(error?.message.contains("does not verify") == true, "\(String(describing: error))")
            // OpenSSL's reason: the server sends its CA along, which this client does not trust.
            #expect(error?.message.contains("self-signed certificate in certificate chain") == true, "\(String(describing: error))")
            #expect(error?.message.contains("tls.caFile") == true)
            #expect(!server.log.contains("wrong version number"), "a plaintext attempt reached the server")
        }
    }

    @Test("a server name the certificate does not hold is refused; insecureSkipVerify accepts it")
    func wrongName() throws {
        try withRedisServer(.init(tls: .init())) { server in
            var options = server.connectionOptions()
            options.tls?.serverName = "redis.example.com"
            let error = #expect(throws: RedisError.self) { try RedisConnection(options: options) }
            #expect(error?.kind == .tls)
            #expect(error?.message.contains("hostname mismatch") == true, "\(String(describing: error))")
            options.tls?.serverName = "localhost"
            #expect(try RedisConnection(options: options).command(["PING"]) == .status("PONG"), "the DNS name it holds")
            options.tls = RedisTLSOptions(caFile: try TestCertificates.shared().otherCAFile, serverName: "redis.example.com",
                                          insecureSkipVerify: true)
            #expect(try RedisConnection(options: options).command(["PING"]) == .status("PONG"))
        }
    }

    @Test("an unreadable CA file is a TLS error naming the file")
    func unreadableCAFile() throws {
        try withRedisServer(.init(tls: .init())) { server in
            var options = server.connectionOptions()
            options.tls?.caFile = "/nonexistent/ca.crt"
            let error = #expect(throws: RedisError.self) { try RedisConnection(options: options) }
            #expect(error?.kind == .tls)
            #expect(error?.message.contains("/nonexistent/ca.crt") == true)
        }
    }

    @Test("TLS to a plaintext server fails as TLS, and plaintext to a TLS server never gets an answer")
    func mismatchedPorts() throws {
        try withRedisServer { plain in
            var options = plain.connectionOptions()
            options.connectTimeout = .seconds(1)
            options.tls = RedisTLSOptions(caFile: try TestCertificates.shared().caFile)
            let error = #expect(throws: RedisError.self) { try RedisConnection(options: options) }
            #expect(error?.kind == .tls || error?.kind == .timeout, "\(String(describing: error))")
        }
        try withRedisServer(.init(tls: .init())) { server in
            var options = server.connectionOptions()
            options.tls = nil
            options.commandTimeout = .seconds(1)
            #expect(throws: RedisError.self) { try RedisConnection(options: options).command(["PING"]) }
        }
    }

    @Test("after the server restarts, the next command reconnects over TLS")
    func reconnects() throws {
        try withRedisServer(.init(tls: .init())) { server in
            let connection = try server.connect()
            #expect(try connection.command(["PING"]) == .status("PONG"))
            try server.restart()
            _ = try? connection.command(["PING"])
            #expect(try connection.command(["PING"]) == .status("PONG"))
            #expect(connection.connectCount == 2)
        }
    }
}
