import CHiredis
import Testing

/// The shim's reply functions (`cs_summary_functions`), which read a transaction's outcome without building its
/// replies, driven by hiredis's own parser over protocol bytes.
@Suite("hiredis reply summary: a reply's type, size and first error, without reply objects")
struct RedisReplySummaryTests {
    /// The summary hiredis's reader makes of `protocol`, which must hold one whole reply.
    private func summary(_ protocolText: String) throws -> cs_reply_summary {
        let reader = try #require(redisReaderCreateWithFunctions(cs_summary_functions()))
        defer { redisReaderFree(reader) }
        var summary = cs_reply_summary()
        var reply: UnsafeMutableRawPointer?
        let status = withUnsafeMutablePointer(to: &summary) { pointer in
            reader.pointee.privdata = UnsafeMutableRawPointer(pointer)
            var bytes = Array(protocolText.utf8)
            let fed = bytes.withUnsafeMutableBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, $0.count) }
            }
            return fed == REDIS_OK ? redisReaderGetReply(reader, &reply) : fed
        }
        #expect(status == REDIS_OK)
        #expect(reply != nil, "a whole reply was read")
        return summary
    }

    private func errorText(_ summary: cs_reply_summary) -> String {
        withUnsafeBytes(of: summary.error) { String(decoding: $0.prefix(summary.errorLength), as: UTF8.self) }
    }

    @Test("EXEC's results: an array, its size, and the first of its error replies")
    func results() throws {
        let ok = try summary("*3\r\n:1\r\n+OK\r\n$5\r\nhello\r\n")
        #expect(ok.type == REDIS_REPLY_ARRAY && ok.elements == 3 && ok.errors == 0)

        let failed = try summary("*4\r\n:1\r\n-WRONGTYPE Operation against a key\r\n$-1\r\n-ERR second\r\n")
        #expect(failed.type == REDIS_REPLY_ARRAY && failed.elements == 4)
        #expect(failed.errors == 2)
        #expect(errorText(failed) == "WRONGTYPE Operation against a key")

        let nested = try summary("*2\r\n*2\r\n:1\r\n-ERR inner\r\n*0\r\n")
        #expect(nested.type == REDIS_REPLY_ARRAY && nested.elements == 2 && nested.errors == 1)
        #expect(errorText(nested) == "ERR inner")
    }

    @Test("an EXEC aborted by WATCH is a null array; an EXECABORT is an error; a long error text is cut")
    func abortedAndErrors() throws {
        #expect(try summary("*-1\r\n").type == REDIS_REPLY_NIL)
        #expect(try summary("$-1\r\n").type == REDIS_REPLY_NIL)
        let aborted = try summary("-EXECABORT Transaction discarded because of previous errors.\r\n")
        #expect(aborted.type == REDIS_REPLY_ERROR && aborted.errors == 1)
        #expect(errorText(aborted).hasPrefix("EXECABORT "))
        let long = try summary("-ERR " + String(repeating: "x", count: 2000) + "\r\n")
        #expect(long.errorLength == 512 && errorText(long).hasPrefix("ERR xxx"))
    }
}
