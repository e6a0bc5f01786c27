import RedisBridge
import Testing

@Suite("Commands laid out in the Redis protocol")
struct RedisCommandBatchTests {
    @Test("each command is an array of bulk strings with their byte lengths")
    func layout() {
        var batch = RedisCommandBatch()
        batch.append("SET", "k", String(repeating: "v", count: 12_345), "EX", "0")
        batch.append(["UNLINK", "é"])
        #expect(batch.count == 2)
        var pair = RedisCommandBatch()
        pair.append("UNLINK", "é")
        #expect(pair.bytes == RedisCommandBatch([["UNLINK", "é"].map { Array($0.utf8) }]).bytes && pair.count == 1)
        let expected = "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$12345\r\n" + String(repeating: "v", count: 12_345)
            + "\r\n$2\r\nEX\r\n$1\r\n0\r\n*2\r\n$6\r\nUNLINK\r\n$2\r\né\r\n"
        #expect(String(decoding: batch.bytes, as: UTF8.self) == expected)
    }

    @Test("a suffixed command writes each text with the suffix after it")
    func suffixed() {
        var batch = RedisCommandBatch()
        batch.append("UNLINK", ["a", "bcd", ""], suffix: ":lease")
        #expect(batch.bytes == RedisCommandBatch([["UNLINK", "a:lease", "bcd:lease", ":lease"].map { Array($0.utf8) }]).bytes)
        #expect(batch.count == 1)
    }

    @Test("a braced argument is {text} and the suffix, as the string would be")
    func braced() {
        var batch = RedisCommandBatch()
        for text in ["products:42", "", "é" + String(repeating: "x", count: 300)] {
            batch.append("GET", braced: text, suffix: ":access_count")
        }
        #expect(batch.bytes == RedisCommandBatch(["products:42", "", "é" + String(repeating: "x", count: 300)].map { text in
            ["GET", "{" + text + "}:access_count"].map { Array($0.utf8) }
        }).bytes)
        #expect(batch.count == 3)
    }

    @Test("an argument list laid out one by one becomes one command, as the suffixed array would; copies stay apart")
    func argumentList() {
        var list = RedisArgumentList()
        let texts = ["a", "bcd", "", "é"] + (0..<300).map { "key:\($0)" }
        for text in texts { list.append(text, suffix: ":lease") }
        let copy = list
        list.append("later", suffix: "")
        var batch = RedisCommandBatch(), expected = RedisCommandBatch()
        batch.append("UNLINK", copy)
        expected.append("UNLINK", texts, suffix: ":lease")
        #expect(batch.bytes == expected.bytes && batch.count == 1 && copy.count == texts.count)
        batch.append("DEL", list)
        expected.append(["DEL"] + texts.map { $0 + ":lease" } + ["later"])
        #expect(batch.bytes == expected.bytes && batch.count == 2)
        var empty = RedisCommandBatch()
        empty.append("UNLINK", RedisArgumentList())
        #expect(String(decoding: empty.bytes, as: UTF8.self) == "*1\r\n$6\r\nUNLINK\r\n")
    }

    @Test("numbers left out of an argument list and given later land where they were left out, at every width")
    func pendingNumbers() {
        var list = RedisArgumentList()
        var expected: [String] = ["EVALSHA"]
        let numbers = [0, 7, 300, 3600, 86400, 1_000_000_007]
        list.appendPendingNumber()
        for index in 0..<numbers.count - 1 {
            list.append("key:\(index)")
            list.appendPendingNumber()
            expected += ["key:\(index)"]
        }
        list.append("tail")
        expected.insert("0", at: 1)
        for (index, number) in numbers.dropFirst().enumerated() {
            expected.insert(String(number), at: 3 + 2 * index)
        }
        expected.append("tail")
        #expect(list.pendingNumbers.count == numbers.count && list.count == expected.count - 1)
        let filled = list.filling(numbers)
        #expect(filled.pendingNumbers.isEmpty && filled.count == list.count)
        var batch = RedisCommandBatch(), plain = RedisCommandBatch()
        batch.append(["EVALSHA"], lists: [filled])
        plain.append(expected)
        #expect(batch.bytes == plain.bytes)
        // Nothing left out: the list as it is.
        var whole = RedisArgumentList()
        whole.append("a")
        #expect(whole.filling([]).count == 1)
    }

    @Test("lengths of every decimal width, zero included")
    func lengths() {
        for length in [0, 1, 9, 10, 99, 100, 1_000_000] {
            var batch = RedisCommandBatch()
            batch.append(String(repeating: "x", count: length))
            let text = String(decoding: batch.bytes, as: UTF8.self)
            #expect(text == "*1\r\n$\(length)\r\n" + String(repeating: "x", count: length) + "\r\n")
        }
    }

    @Test("a number argument is laid out as its decimal text, at every width")
    func numberArgument() {
        for number in [0, 7, 10, 99, 100, 86_400, 1_000_000_007, Int.max] {
            var batch = RedisCommandBatch()
            batch.append("SET", "k", "v", "EX", number)
            var text = RedisCommandBatch()
            text.append(["SET", "k", "v", "EX", String(number)])
            #expect(batch.bytes == text.bytes, "\(number)")
            #expect(batch.count == 1)
        }
    }

    @Test("a copy of a batch keeps its commands when the original goes on, and the other way round")
    func copies() {
        var first = RedisCommandBatch()
        first.append("PING")
        var second = first
        second.append("ECHO", String(repeating: "e", count: 1000))
        first.append("DEL", "k")
        #expect(String(decoding: first.bytes, as: UTF8.self) == "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n")
        #expect(String(decoding: second.bytes, as: UTF8.self)
                == "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$1000\r\n" + String(repeating: "e", count: 1000) + "\r\n")
        #expect(first.count == 2 && second.count == 2)
        #expect(RedisCommandBatch().bytes.isEmpty)
    }
}
