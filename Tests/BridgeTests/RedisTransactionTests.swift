import RedisBridge
import TestSupport
import Testing

/// `RedisConnection.transaction`: MULTI/EXEC, guarded by WATCH on a key that must hold a given value.
@Suite("RedisConnection.transaction: MULTI/EXEC with a WATCH guard")
struct RedisTransactionTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("an unguarded transaction runs every command and returns their replies in order")
    func unguarded() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let key = server.key("tx")
            let replies = try connection.transaction([
                [bytes("SET"), bytes(key), bytes("one")],
                [bytes("APPEND"), bytes(key), bytes("+two")],
                [bytes("GET"), bytes(key)],
            ])
            #expect(replies == [.status("OK"), .integer(7), .string(bytes("one+two"))])
        }
    }

    @Test("a guard key that holds the value lets the transaction write; one that holds another writes nothing")
    func guarded() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let guardKey = server.key("lease"), key = server.key("value")
            _ = try connection.command(["SET", guardKey, "me|3"])
            let write = [[bytes("SET"), bytes(key), bytes("mine")]]

            #expect(try connection.transaction(write, onlyIf: (bytes(guardKey), bytes("me|3"))) == [.status("OK")])
            #expect(try connection.command(["GET", key]).text == "mine")

            _ = try connection.command(["SET", guardKey, "other|4"])
            let stale = [[bytes("SET"), bytes(key), bytes("stale")]]
            #expect(try connection.transaction(stale, onlyIf: (bytes(guardKey), bytes("me|3"))) == nil)
            _ = try connection.command(["DEL", guardKey])
            #expect(try connection.transaction(stale, onlyIf: (bytes(guardKey), bytes("me|3"))) == nil)
            #expect(try connection.command(["GET", key]).text == "mine")

            // The refused guard left no WATCH behind: after the key changes, an unguarded transaction still runs.
            _ = try server.connect().command(["SET", guardKey, "other|5"])
            #expect(try connection.transaction([[bytes("GET"), bytes(key)]]) == [.string(bytes("mine"))])
        }
    }

    @Test("a guard key of the wrong type throws the server's error and leaves no WATCH behind")
    func wrongTypeGuard() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let guardKey = server.key("hash-lease"), key = server.key("untouched")
            _ = try connection.command(["HSET", guardKey, "f", "v"])
            let thrown = #expect(throws: RedisError.self) {
                try connection.transaction([[bytes("SET"), bytes(key), bytes("x")]], onlyIf: (bytes(guardKey), bytes("v")))
            }
            #expect(thrown?.serverCode == "WRONGTYPE")
            #expect(try connection.command(["EXISTS", key]) == .integer(0))
            _ = try server.connect().command(["HSET", guardKey, "f", "w"])
            #expect(try connection.transaction([[bytes("GET"), bytes(key)]]) == [.null])
        }
    }

    @Test("a command Redis refuses to queue aborts the whole transaction with the server's error")
    func refusedCommand() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let key = server.key("aborted")
            let thrown = #expect(throws: RedisError.self) {
                try connection.transaction([[bytes("SET"), bytes(key), bytes("x")], [bytes("SET"), bytes(key)]])
            }
            #expect(thrown?.serverCode == "EXECABORT")
            #expect(try connection.command(["EXISTS", key]) == .integer(0))
        }
    }

    @Test("a sent transaction's outcome is kept when another command runs first, which sees its writes")
    func sentThenOtherCommand() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let guardKey = server.key("lease"), key = server.key("sent")
            _ = try connection.command(["SET", guardKey, "me|1"])
            var batch = RedisCommandBatch()
            batch.append("SET", key, "first")
            batch.append("APPEND", key, "+second")
            #expect(try connection.sendTransaction(batch, onlyIf: (bytes(guardKey), bytes("me|1"))))
            #expect(try connection.command(["GET", key]).text == "first+second")
            #expect(try connection.awaitTransaction() == 2)
            #expect(throws: RedisError.self, "an outcome is taken once") { try connection.awaitTransaction() }
        }
    }

    @Test("a read-only command sent behind a transaction in flight sees its writes and keeps its outcome and its guard ahead")
    func readBehindSent() throws {
        try withRedisServer { server in
            let connection = try server.connect(), other = try server.connect()
            let guardKey = server.key("lease"), key = server.key("sent")
            let lease = (key: bytes(guardKey), value: bytes("me|1"))
            _ = try connection.command(["SET", guardKey, "me|1"])
            var batch = RedisCommandBatch()
            batch.append("SET", key, "first")
            #expect(try connection.sendTransaction(batch, onlyIf: lease))
            let read = RedisCommandBatch([[bytes("MGET"), bytes(key), bytes(guardKey)]])
            #expect(try connection.readOnlyCommand(read) == .array([.string(bytes("first")), .string(bytes("me|1"))]))
            #expect(try connection.awaitTransaction() == 1)

            _ = try other.command(["SET", guardKey, "other|2"])
            var second = RedisCommandBatch()
            second.append("SET", key, "second")
            #expect(try connection.sendTransaction(second, onlyIf: lease), "checked from the guard sent ahead")
            #expect(try connection.readOnlyCommand(read) == .array([.string(bytes("first")), .string(bytes("other|2"))]))
            #expect(try connection.awaitTransaction() == nil, "the WATCH sent ahead still fenced it")

            var refused = RedisCommandBatch()
            refused.append(["SET", key])
            #expect(try connection.sendTransaction(refused))
            #expect(try connection.readOnlyCommand(RedisCommandBatch([[bytes("GET"), bytes(key)]])).text == "first")
            let aborted = #expect(throws: RedisError.self) { try connection.awaitTransaction() }
            // The reason Redis refused to queue the command, not the EXECABORT it then gave EXEC.
            #expect(aborted?.serverCode == "ERR")
            #expect(aborted?.message.contains("wrong number of arguments") == true, "\(String(describing: aborted))")
        }
    }

    @Test("a refused guard sends nothing; a second send before the outcome is taken is refused")
    func sentGuardAndOrder() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let guardKey = server.key("lease"), key = server.key("sent")
            _ = try connection.command(["SET", guardKey, "other|2"])
            var batch = RedisCommandBatch()
            batch.append("SET", key, "x")
            #expect(try connection.sendTransaction(batch, onlyIf: (bytes(guardKey), bytes("me|1"))) == false)
            #expect(try connection.command(["EXISTS", key]) == .integer(0))

            #expect(try connection.sendTransaction(batch))
            let thrown = #expect(throws: RedisError.self) { try connection.sendTransaction(batch) }
            #expect(thrown?.kind == .invalidCommand)
            #expect(try connection.awaitTransaction() == 1)
        }
    }

    @Test("a connection closed before the replies are read fails the sent transaction's outcome")
    func sentThenClosed() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            var batch = RedisCommandBatch()
            batch.append("SET", server.key("sent"), "x")
            #expect(try connection.sendTransaction(batch))
            connection.close()
            let thrown = #expect(throws: RedisError.self) { try connection.awaitTransaction() }
            #expect(thrown?.kind == .io)
        }
    }

    @Test("a sent transaction's error replies are thrown when its outcome is taken: a refused command, a failed one")
    func sentErrors() throws {
        try withRedisServer { server in
            let connection = try server.connect()
            let key = server.key("sent"), text = server.key("text")
            var refused = RedisCommandBatch()
            refused.append("SET", key, "x")
            refused.append(["SET", key])
            #expect(try connection.sendTransaction(refused))
            let aborted = #expect(throws: RedisError.self) { try connection.awaitTransaction() }
            // The reason Redis refused to queue the command, not the EXECABORT it then gave EXEC.
            #expect(aborted?.serverCode == "ERR")
            #expect(aborted?.message.contains("wrong number of arguments") == true, "\(String(describing: aborted))")
            #expect(try connection.command(["EXISTS", key]) == .integer(0))

            var failing = RedisCommandBatch()
            failing.append("SET", text, "not a number")
            failing.append("INCR", text)
            failing.append("SET", key, "after")
            #expect(try connection.sendTransaction(failing))
            let failed = #expect(throws: RedisError.self) { try connection.awaitTransaction() }
            #expect(failed?.serverCode == "ERR")
            #expect(failed?.message.contains("not an integer") == true)
            #expect(try connection.command(["GET", key]).text == "after", "Redis runs the commands after a failed one")
            #expect(try connection.command(["PING"]) == .status("PONG"), "the connection reads on after the outcome")
        }
    }

    @Test("the guard sent behind a transaction serves the next one on the same key: read before a change, which its WATCH still fences")
    func guardAheadFences() throws {
        try withRedisServer { server in
            let connection = try server.connect(), other = try server.connect()
            let guardKey = server.key("lease"), key = server.key("sent"), counter = server.key("count")
            let lease = (key: bytes(guardKey), value: bytes("me|1"))
            _ = try connection.command(["SET", guardKey, "me|1"])
            var first = RedisCommandBatch()
            first.append("SET", key, "first")
            #expect(try connection.sendTransaction(first, onlyIf: lease))
            #expect(try connection.awaitTransaction() == 1)
            #expect(try connection.readOnlyCommand(RedisCommandBatch([[bytes("MGET"), bytes(counter)]])) == .array([.null]))

            _ = try other.command(["SET", guardKey, "other|2"])
            var second = RedisCommandBatch()
            second.append("SET", key, "second")
            // A fresh `GET` would see `other|2` and send nothing: the guard read after the first `EXEC` says `me|1`.
            #expect(try connection.sendTransaction(second, onlyIf: lease), "checked from the guard sent ahead")
            #expect(try connection.awaitTransaction() == nil, "the WATCH sent ahead saw the change")
            #expect(try connection.command(["GET", key]).text == "first")

            #expect(try connection.sendTransaction(second, onlyIf: lease) == false, "the next guard is checked afresh")
            #expect(try connection.transaction([[bytes("SET"), bytes(key), bytes("unguarded")]]) == [.status("OK")])
        }
    }

    @Test("a guard sent ahead is undone by any other call: our own write to its key, an unguarded transaction")
    func guardAheadUndone() throws {
        try withRedisServer { server in
            let connection = try server.connect(), other = try server.connect()
            let guardKey = server.key("lease"), key = server.key("sent")
            let lease = (key: bytes(guardKey), value: bytes("me|1"))
            _ = try connection.command(["SET", guardKey, "me|1"])
            var batch = RedisCommandBatch()
            batch.append("INCR", key)
            #expect(try connection.sendTransaction(batch, onlyIf: lease))
            #expect(try connection.awaitTransaction() == 1)
            // A lease renewal writes the key; left WATCHed, it would abort the next transaction.
            _ = try connection.command(["PEXPIRE", guardKey, "60000"])
            #expect(try connection.sendTransaction(batch, onlyIf: lease))
            #expect(try connection.awaitTransaction() == 1, "checked afresh after our own write")

            _ = try other.command(["SET", guardKey, "other|2"])
            #expect(try connection.transaction(batch) == [.integer(3)], "an unguarded transaction is not WATCHed")
        }
    }

    @Test("a transaction that changes its own guard's key: the guard sent behind it refuses the next one at once")
    func guardAheadRefuses() throws {
        try withRedisServer { server in
            let connection = try server.connect(), other = try server.connect()
            let guardKey = server.key("lease"), key = server.key("sent")
            let lease = (key: bytes(guardKey), value: bytes("me|1"))
            _ = try connection.command(["SET", guardKey, "me|1"])
            var handOver = RedisCommandBatch()
            handOver.append("SET", guardKey, "other|2")
            #expect(try connection.sendTransaction(handOver, onlyIf: lease))
            #expect(try connection.awaitTransaction() == 1)
            var write = RedisCommandBatch()
            write.append("SET", key, "x")
            #expect(try connection.transaction(write, onlyIf: lease) == nil)
            #expect(try connection.command(["EXISTS", key]) == .integer(0))
            _ = try other.command(["SET", guardKey, "third|3"])
            #expect(try connection.transaction(write) == [.status("OK")], "the refused guard's WATCH was undone")
        }
    }

    @Test("a guarded transaction with an empty command is refused before its guard is WATCHed")
    func emptyCommandBeforeGuard() throws {
        try withRedisServer { server in
            let connection = try server.connect(), other = try server.connect()
            let guardKey = server.key("lease"), key = server.key("sent")
            let lease = (key: bytes(guardKey), value: bytes("me|1"))
            _ = try connection.command(["SET", guardKey, "me|1"])
            var empty = RedisCommandBatch()
            empty.append([String]())
            let refused = #expect(throws: RedisError.self) { try connection.transaction(empty, onlyIf: lease) }
            #expect(refused?.kind == .invalidCommand)
            let unsent = #expect(throws: RedisError.self) { try connection.sendTransaction(empty, onlyIf: lease) }
            #expect(unsent?.kind == .invalidCommand)
            // A WATCH left behind would abort the next unguarded transaction once the key changes.
            _ = try other.command(["SET", guardKey, "other|2"])
            #expect(try connection.transaction([[bytes("SET"), bytes(key), bytes("x")]]) == [.status("OK")])
        }
    }
}
