import CHiredis

/// What a connection sent ahead of the next call, which that call accounts for first: a transaction
/// `sendTransaction` wrote, its outcome once read, and the guard for the next transaction sent behind its `EXEC`.
enum RedisSentAhead {
    /// Nothing: the next call starts on a quiet connection.
    case nothing
    /// A transaction `sendTransaction` wrote: `replies` unread (`MULTI`, one per command, `EXEC`), followed, when it
    /// was guarded, by the next transaction's guard (`WATCH` and `GET` of `guardKey`, two replies more).
    case transaction(replies: Int, guardKey: [UInt8]?)
    /// Its replies are read: the outcome `awaitTransaction` takes, and the guard read behind it, if any.
    case outcome(Result<Int?, RedisError>, guard: RedisArmedGuard?)
    /// The outcome is taken; the guard still `WATCH`es its key on the server.
    case guardArmed(RedisArmedGuard)
    /// Commands `sendPipeline` wrote: `replies` unread.
    case pipeline(replies: Int)
    /// Their replies once read, which `awaitPipeline` takes.
    case replies(Result<[RedisReply], RedisError>)

    /// The guard read behind a sent transaction, if any.
    var armedGuard: RedisArmedGuard? {
        switch self {
        case .outcome(_, let armed): armed
        case .guardArmed(let armed): armed
        case .nothing, .transaction, .pipeline, .replies: nil
        }
    }

    /// The state without its armed guard (taken, undone, or lost with the socket).
    var withoutGuard: RedisSentAhead {
        switch self {
        case .outcome(let outcome, _): .outcome(outcome, guard: nil)
        case .guardArmed: .nothing
        case .nothing, .transaction, .pipeline, .replies: self
        }
    }
}

/// A guard sent ahead and read: `WATCH` holds `key` on the server until the next `EXEC` or `UNWATCH`, and `current`
/// is what `GET` read (or `WATCH`'s error reply). While it is armed, the next transaction guarded by the same key
/// checks `current` instead of a round trip; every other call but `readOnlyCommand` undoes it first (`UNWATCH`),
/// since a write of ours to the key would abort that transaction and an unguarded `EXEC` must not be watched.
struct RedisArmedGuard {
    let key: [UInt8]
    let current: RedisReply
}

extension RedisConnection {
    /// Runs `commands` atomically in `MULTI`/`EXEC` and returns their replies (error replies as `.error` values).
    ///
    /// With `condition`, only while `condition.key` holds `condition.value`: `WATCH` and `GET` go first on the same
    /// socket (never reconnecting in between), so a key that holds something else, or changes before `EXEC`,
    /// writes nothing and returns `nil`. A command Redis refuses to queue aborts the whole transaction (throws).
    public func transaction(_ commands: [[[UInt8]]], onlyIf condition: (key: [UInt8], value: [UInt8])? = nil)
        throws(RedisError) -> [RedisReply]? {
        try transaction(RedisCommandBatch(commands), onlyIf: condition)
    }

    /// `transaction` for commands already laid out in a batch.
    public func transaction(_ commands: RedisCommandBatch, onlyIf condition: (key: [UInt8], value: [UInt8])? = nil)
        throws(RedisError) -> [RedisReply]? {
        try locked { () throws(RedisError) -> [RedisReply]? in
            try checkNoEmptyCommand(commands)
            let context = try connectedContext(keepingGuardAhead: true)
            guard try guardHolds(context, condition) else { return nil }
            let count = try appendTransaction(context, commands)
            return try readExecOutcome(context, count)
        }
    }

    /// Starts `transaction(_:onlyIf:)` and returns once it is written, so the caller can work while Redis runs
    /// it; `false` (nothing sent) when the guard does not hold. Take the outcome with `awaitTransaction()` before
    /// sending the next one; any other call on this connection reads the replies first (keeping the outcome), so
    /// commands never overtake the transaction.
    ///
    /// A guarded transaction sends the next one's guard behind its `EXEC` (`WATCH` and `GET` of the key): when
    /// the next call is another guarded transaction on the same key (or a `readOnlyCommand`s first), its guard is
    /// checked without a round trip — the key held the value after this `EXEC` and has not changed since, or
    /// the `WATCH` aborts that transaction. Any other call undoes the guard sent ahead first.
    public func sendTransaction(_ commands: RedisCommandBatch, onlyIf condition: (key: [UInt8], value: [UInt8])? = nil)
        throws(RedisError) -> Bool {
        try locked { () throws(RedisError) -> Bool in
            let context = try connectedContext(keepingGuardAhead: true)
            try checkOutcomeTaken()
            try checkNoEmptyCommand(commands)
            guard try guardHolds(context, condition) else { return false }
            var count = try appendTransaction(context, commands)
            if let condition {
                try append(context, Self.guardCommands(condition.key), dropOnFailure: true)
                count += 2
            }
            try flushOutput(context)
            sentAhead = .transaction(replies: count, guardKey: condition?.key)
            return true
        }
    }

    /// The outcome of the transaction `sendTransaction` wrote, waiting for its replies if they are not read yet:
    /// how many commands `EXEC` ran, `nil` when the guard key changed before `EXEC`. The replies are read without
    /// being built (a sent transaction is for writes): the first error reply among them — a command Redis refused
    /// to queue, or one that failed — is thrown.
    public func awaitTransaction() throws(RedisError) -> Int? {
        try locked { () throws(RedisError) -> Int? in
            if let context { readSentReplies(context) }
            guard case .outcome(let outcome, let armed) = sentAhead else {
                throw RedisError.invalidCommand("no transaction was sent", endpoint: options.endpoint)
            }
            sentAhead = armed.map { .guardArmed($0) } ?? .nothing
            return try outcome.get()
        }
    }

    /// Forgets a sent transaction's outcome, or a sent pipeline's replies (after a failure elsewhere, when nobody
    /// will take them).
    public func discardSentTransaction() {
        locked {
            if let context { readSentReplies(context) }
            if case .outcome(_, let armed) = sentAhead {
                sentAhead = armed.map { .guardArmed($0) } ?? .nothing
            } else if case .replies = sentAhead {
                sentAhead = .nothing
            }
        }
    }

    /// Appends `MULTI`, the commands and `EXEC` (the commands' bytes as they are, not copied into a new batch);
    /// returns how many replies they produce. The caller checked the commands (`checkNoEmptyCommand`) before
    /// its guard, which an empty command must not leave `WATCH`ed.
    private func appendTransaction(_ context: UnsafeMutablePointer<redisContext>, _ commands: RedisCommandBatch)
        throws(RedisError) -> Int {
        try append(context, Self.multi, dropOnFailure: true)
        try append(context, commands, dropOnFailure: true)
        try append(context, Self.exec, dropOnFailure: true)
        return commands.count + 2
    }

    private static let multi = RedisCommandBatch([[Array("MULTI".utf8)]])
    private static let exec = RedisCommandBatch([[Array("EXEC".utf8)]])
    private static let unwatch = RedisCommandBatch([[Array("UNWATCH".utf8)]])

    /// `WATCH` and `GET` of a guard's key.
    private static func guardCommands(_ key: [UInt8]) -> RedisCommandBatch {
        RedisCommandBatch([[Array("WATCH".utf8), key], [Array("GET".utf8), key]])
    }

    /// With a condition, whether its key holds the value, `WATCH`ed until the next `EXEC`: from the guard sent
    /// ahead when it is for the same key, else `WATCH` and `GET` in a round trip. When it does not hold, the
    /// `WATCH` is undone at once: it would abort the next transaction on this connection.
    private func guardHolds(_ context: UnsafeMutablePointer<redisContext>, _ condition: (key: [UInt8], value: [UInt8])?)
        throws(RedisError) -> Bool {
        guard let condition else {
            try disarmGuardAhead(context)
            return true
        }
        let current: RedisReply
        if let armed = sentAhead.armedGuard, armed.key == condition.key {
            sentAhead = sentAhead.withoutGuard
            current = armed.current
        } else {
            try disarmGuardAhead(context)
            current = Self.guardReply(try roundTrip(context, Self.guardCommands(condition.key)))
        }
        if case .string(let value) = current, value == condition.value { return true }
        _ = try roundTrip(context, Self.unwatch)
        if case .error(let text) = current {
            throw replyError(text)
        }
        return false
    }

    /// What a guard read: `GET`'s reply, or `WATCH`'s when it failed.
    private static func guardReply(_ replies: [RedisReply]) -> RedisReply {
        replies[0] == .status("OK") ? replies[1] : replies[0]
    }

    /// Undoes the guard sent ahead, if any (`UNWATCH`). Call with its replies read.
    func disarmGuardAhead(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        guard sentAhead.armedGuard != nil else { return }
        sentAhead = sentAhead.withoutGuard
        _ = try roundTrip(context, Self.unwatch)
    }

    /// The results of a framed transaction from its `count` replies; `nil` when `EXEC` was aborted by a changed
    /// `WATCH`ed key. Only `EXEC`'s reply is built.
    private func readExecOutcome(_ context: UnsafeMutablePointer<redisContext>, _ count: Int) throws(RedisError) -> [RedisReply]? {
        try skipReplies(context, count - 1)
        let exec = try readReply(context, dropOnFailure: true)
        switch exec {
        case .array(let results):
            return results
        case .null:
            return nil
        case .error(let text):
            throw replyError(text)
        default:
            throw RedisError(kind: .protocolViolation, endpoint: options.endpoint, message: "EXEC answered \(exec)")
        }
    }

    /// Writes `laidOut` and returns without waiting for Redis, so the caller can work meanwhile (a cluster's
    /// masters all work on their parts at once); `awaitPipeline()` takes the replies. Any other call on this
    /// connection reads them first and keeps them, so commands never overtake them; the next `sendPipeline` drops
    /// them if nobody took them (a caller that gave up on them after a failure elsewhere).
    public func sendPipeline(_ laidOut: RedisCommandBatch) throws(RedisError) {
        try locked { () throws(RedisError) in
            let context = try connectedContext()
            if case .replies = sentAhead { sentAhead = .nothing }
            try checkOutcomeTaken()
            try checkNoEmptyCommand(laidOut)
            try append(context, laidOut, dropOnFailure: true)
            try flushOutput(context)
            sentAhead = .pipeline(replies: laidOut.count)
        }
    }

    /// The replies of the commands `sendPipeline` wrote, waiting for them if they are not read yet (error replies
    /// are `.error` values); throws when the connection failed before they were read.
    public func awaitPipeline() throws(RedisError) -> [RedisReply] {
        try locked { () throws(RedisError) -> [RedisReply] in
            if let context { readSentReplies(context) }
            guard case .replies(let replies) = sentAhead else {
                throw RedisError.invalidCommand("no pipeline was sent", endpoint: options.endpoint)
            }
            sentAhead = .nothing
            return try replies.get()
        }
    }

    /// Throws when what was sent ahead has an outcome nobody took (a caller's mistake).
    private func checkOutcomeTaken() throws(RedisError) {
        switch sentAhead {
        case .outcome, .replies:
            throw RedisError.invalidCommand("the previous outcome was not taken", endpoint: options.endpoint)
        case .nothing, .transaction, .guardArmed, .pipeline:
            break
        }
    }

    /// Reads a sent transaction's replies, if unread, into its outcome, and those of the guard sent behind it; or
    /// the replies of a sent pipeline. Call with the lock held.
    func readSentReplies(_ context: UnsafeMutablePointer<redisContext>) {
        if case .pipeline(let count) = sentAhead {
            // A failure below drops the context, which must not take these replies for ones still unread.
            sentAhead = .nothing
            let replies: Result<[RedisReply], RedisError>
            do {
                replies = .success(try readReplies(context, count, dropOnFailure: true))
            } catch {
                replies = .failure(error)
            }
            sentAhead = .replies(replies)
            return
        }
        guard case .transaction(let count, let guardKey) = sentAhead else { return }
        // A failure below drops the context, which must not take this transaction for one still unread.
        sentAhead = .nothing
        let guardReplies = guardKey == nil ? 0 : 2
        let outcome: Result<Int?, RedisError>
        do {
            outcome = .success(try readExecSummary(context, count - guardReplies))
        } catch {
            outcome = .failure(error)
        }
        var armed: RedisArmedGuard?
        if let guardKey, self.context != nil,
           let replies = try? readReplies(context, guardReplies, dropOnFailure: true) {
            // On a failure the context is dropped, and the guard with it.
            armed = RedisArmedGuard(key: guardKey, current: Self.guardReply(replies))
        }
        sentAhead = .outcome(outcome, guard: armed)
    }

    /// The outcome of a framed transaction from its `count` replies, as `awaitTransaction` gives it, read without
    /// building any reply: all of them are summarized by the shim's reply functions, so the first error is the
    /// real one (a command refused at queueing, such as `READONLY` on a replica, rather than `EXECABORT`), and
    /// the type and size are `EXEC`'s, the last.
    private func readExecSummary(_ context: UnsafeMutablePointer<redisContext>, _ count: Int) throws(RedisError) -> Int? {
        var summary = cs_reply_summary()
        try withUnsafeMutablePointer(to: &summary) { pointer throws(RedisError) in
            try withReplyFunctions(context, cs_summary_functions(), pointer) { () throws(RedisError) in
                for _ in 0..<count { _ = try nextRawReply(context, dropOnFailure: true) }
            }
        }
        if summary.errors > 0 {
            let text = withUnsafeBytes(of: summary.error) { String(decoding: $0.prefix(summary.errorLength), as: UTF8.self) }
            throw replyError(text)
        }
        switch Int32(summary.type) {
        case REDIS_REPLY_ARRAY: return Int(summary.elements)
        case REDIS_REPLY_NIL: return nil
        default:
            throw RedisError(kind: .protocolViolation, endpoint: options.endpoint,
                             message: "EXEC answered a reply of type \(summary.type)")
        }
    }
}
