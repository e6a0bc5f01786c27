import RedisBridge
import TestSupport
import Testing

/// A long-lived connection does not leak replies or arguments.
@Suite("Memory use of a long-lived connection")
struct RedisLeakTests {
    @Test("100,000 commands with 1 KiB values on one connection keep resident memory within 20 MB")
    func residentMemoryStaysFlat() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let key = Array(server.key("leak").utf8)
            let value = [UInt8](repeating: 0x61, count: 1_024)
            let set = [Array("SET".utf8), key, value]
            let get = [Array("GET".utf8), key]
            for _ in 0..<5_000 {
                _ = try connection.command(set)
                _ = try connection.command(get)
            }
            let before = try #require(ResidentMemory.bytes())
            var wrong = 0
            for index in 0..<100_000 {
                let reply = try connection.command(index.isMultiple(of: 2) ? set : get)
                if reply != .status("OK") && reply != .string(value) { wrong += 1 }
            }
            let after = try #require(ResidentMemory.bytes())
            let growth = after - before
            #expect(wrong == 0)
            #expect(growth < 20 * 1_024 * 1_024, "resident memory grew by \(growth / 1_024) KiB over 100,000 commands")
        }
    }
}
