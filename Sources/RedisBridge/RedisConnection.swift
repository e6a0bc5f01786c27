import CHiredis
import Foundation
import Glibc

/// One blocking connection to Redis that owns its hiredis `redisContext`.
///
/// Calls block the calling thread, so run them off the cooperative pool. The class is `@unchecked Sendable`:
/// a lock serialises every call, so several threads may share one connection, one call at a time.
/// After an I/O error, a timeout or a closed socket the context is freed and the connection is broken;
/// the next call reconnects (AUTH and SELECT again). Whether to retry the failed command is the caller's choice.
///
/// hiredis writes with `write(2)`, so a write to a socket the server has closed would raise SIGPIPE; creating the
/// first connection therefore sets SIGPIPE to be ignored for the whole process, as servers usually do.
public final class RedisConnection: @unchecked Sendable {
    /// The endpoint, database, credentials and timeouts this connection uses.
    public let options: RedisConnectionOptions

    private let lock = NSLock()
    private var context: UnsafeMutablePointer<redisContext>?
    private var connects = 0
    /// Replies of a transaction `sendTransaction` wrote and nobody has read yet: `MULTI`, one per command, `EXEC`.
    private var unreadReplies: Int?
    /// The sent transaction's outcome, once its replies are read and until `awaitTransaction` takes it.
    private var sentOutcome: Result<Int?, RedisError>?
    /// The guard a guarded `sendTransaction` sent behind its `EXEC` for the next transaction: `WATCH` and `GET` of
    /// its key; `current` is `GET`'s reply once read (`nil` until then, or when `WATCH` failed). While it is set the
    /// `WATCH` holds on the server: the next transaction guarded by the same key checks `current` instead of a
    /// round trip, and every other call but `readOnlyCommand` undoes it first (`UNWATCH`), since a write of
    /// ours to the key would abort that transaction and an unguarded `EXEC` must not be watched.
    private var guardAhead: (key: [UInt8], current: RedisReply?)?

    /// Creates a connection; with `connectNow` it connects at once and throws if that fails.
    public init(options: RedisConnectionOptions, connectNow: Bool = true) throws(RedisError) {
        _ = Self.ignoreSIGPIPE
        self.options = options
        if connectNow {
            try locked { () throws(RedisError) in _ = try connectedContext() }
        }
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// Whether a live context exists; `false` before the first connect and after an I/O error or `close()`.
    public var isConnected: Bool { locked { context != nil } }

    /// How many times this connection has connected successfully (1 after the first connect).
    public var connectCount: Int { locked { connects } }

    /// Sends one command and returns its reply; an error reply throws `.server` (or `.authentication`).
    public func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        try command(arguments.map { Array($0.utf8) })
    }

    /// Sends one binary-safe command and returns its reply; an error reply throws `.server` (or `.authentication`).
    public func command(_ arguments: [[UInt8]]) throws(RedisError) -> RedisReply {
        try command(RedisCommandBatch([arguments]))
    }

    /// `command` of the one command in `laidOut` (such as `RedisCommandBatch.append(_:_:suffix:)` lays out).
    public func command(_ laidOut: RedisCommandBatch) throws(RedisError) -> RedisReply {
        try command(laidOut, keepingGuardAhead: false)
    }

    /// `command(_:)` for a command that writes nothing (`GET`, `MGET`): a guard `sendTransaction` sent ahead stays
    /// armed, since such a command cannot change the guarded key. With a sent transaction's replies unread, the
    /// command is sent behind them before they are read: Redis runs it after that transaction (and its guard
    /// ahead) either way, and the wait for the transaction and the command's round trip become one. The
    /// transaction's outcome is kept for `awaitTransaction`, which no longer waits.
    public func readOnlyCommand(_ laidOut: RedisCommandBatch) throws(RedisError) -> RedisReply {
        try command(laidOut, keepingGuardAhead: true)
    }

    private func command(_ laidOut: RedisCommandBatch, keepingGuardAhead: Bool) throws(RedisError) -> RedisReply {
        precondition(laidOut.count == 1, "command(_:) sends exactly one command")
        let reply = try locked { () throws(RedisError) -> RedisReply in
            if keepingGuardAhead, unreadReplies != nil, let context {
                try append(context, laidOut, dropOnFailure: true)
                readSentReplies(context)
                guard self.context != nil else {
                    if case .failure(let error) = sentOutcome { throw error }
                    throw RedisError(kind: .io, endpoint: options.endpoint,
                                     message: "the connection closed before the command's reply was read")
                }
                return try readReply(context, dropOnFailure: true)
            }
            return try roundTrip(try connectedContext(keepingGuardAhead: keepingGuardAhead), laidOut)[0]
        }
        if case .error(let text) = reply {
            throw RedisError.fromReply(text, endpoint: options.endpoint, redacting: options.password)
        }
        return reply
    }

    /// Sends all commands, then reads all replies, in one round trip; error replies come back as `.error` values.
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisReply] {
        try pipeline(commands.map { $0.map { Array($0.utf8) } })
    }

    /// Binary-safe `pipeline`: all commands are written, then all replies read; error replies are `.error` values.
    public func pipeline(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        return try locked { () throws(RedisError) -> [RedisReply] in
            try roundTrip(try connectedContext(), commands)
        }
    }

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
            guard sentOutcome == nil else {
                throw RedisError.invalidCommand("the previous transaction's outcome was not taken", endpoint: options.endpoint)
            }
            try checkNoEmptyCommand(commands)
            guard try guardHolds(context, condition) else { return false }
            var count = try appendTransaction(context, commands)
            if let condition {
                try append(context, Self.guardCommands(condition.key), dropOnFailure: true)
                guardAhead = (key: condition.key, current: nil)
                count += 2
            }
            var done: Int32 = 0
            while done == 0 {
                if redisBufferWrite(context, &done) != REDIS_OK { throw transportFailure(context, dropOnFailure: true) }
            }
            unreadReplies = count
            return true
        }
    }

    /// The outcome of the transaction `sendTransaction` wrote, waiting for its replies if they are not read yet:
    /// how many commands `EXEC` ran, `nil` when the guard key changed before `EXEC`. The replies are read without
    /// being built (a sent transaction is for writes): the first error reply among them — a command Redis refused
    /// to queue, or one that failed — is thrown.
    public func awaitTransaction() throws(RedisError) -> Int? {
        try locked { () throws(RedisError) -> Int? in
            if unreadReplies != nil, let context { readSentReplies(context) }
            guard let outcome = sentOutcome else {
                throw RedisError.invalidCommand("no transaction was sent", endpoint: options.endpoint)
            }
            sentOutcome = nil
            return try outcome.get()
        }
    }

    /// Forgets a sent transaction's outcome (after a failure elsewhere, when nobody will take it).
    public func discardSentTransaction() {
        locked {
            if unreadReplies != nil, let context { readSentReplies(context) }
            sentOutcome = nil
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
        if let ahead = guardAhead, ahead.key == condition.key, let read = ahead.current {
            guardAhead = nil
            current = read
        } else {
            try disarmGuardAhead(context)
            let replies = try roundTrip(context, Self.guardCommands(condition.key))
            current = replies[0] == .status("OK") ? replies[1] : replies[0]
        }
        if case .string(let value) = current, value == condition.value { return true }
        _ = try roundTrip(context, Self.unwatch)
        if case .error(let text) = current {
            throw RedisError.fromReply(text, endpoint: options.endpoint, redacting: options.password)
        }
        return false
    }

    /// Undoes the guard sent ahead, if any (`UNWATCH`). Call with its replies read.
    private func disarmGuardAhead(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        guard guardAhead != nil else { return }
        guardAhead = nil
        _ = try roundTrip(context, Self.unwatch)
    }

    /// The results of a framed transaction from its `count` replies; `nil` when `EXEC` was aborted by a changed
    /// `WATCH`. The replies before `EXEC`'s (`OK` to `MULTI`, `QUEUED`, or an error that makes `EXEC` fail) are
    /// read and dropped without being copied.
    private func readExecOutcome(_ context: UnsafeMutablePointer<redisContext>, _ count: Int) throws(RedisError) -> [RedisReply]? {
        try skipReplies(context, count - 1)
        let exec = try readReply(context, dropOnFailure: true)
        switch exec {
        case .array(let results):
            return results
        case .null:
            return nil
        case .error(let text):
            throw RedisError.fromReply(text, endpoint: options.endpoint, redacting: options.password)
        default:
            throw RedisError(kind: .protocolViolation, endpoint: options.endpoint, message: "EXEC answered \(exec)")
        }
    }

    /// Reads the sent transaction's replies into `sentOutcome`, and those of the guard sent behind it into
    /// `guardAhead`. Call with the lock held.
    private func readSentReplies(_ context: UnsafeMutablePointer<redisContext>) {
        guard let count = unreadReplies else { return }
        unreadReplies = nil
        let guardReplies = guardAhead == nil ? 0 : 2
        do {
            sentOutcome = .success(try readExecSummary(context, count - guardReplies))
        } catch {
            sentOutcome = .failure(error)
        }
        guard guardReplies > 0, self.context != nil else { return }
        do {
            let replies = try readReplies(context, guardReplies, dropOnFailure: true)
            guardAhead?.current = replies[0] == .status("OK") ? replies[1] : replies[0]
        } catch {
            // The context is dropped, and the guard with it.
        }
    }

    /// Waits for the next message the server pushes on this connection after `SUBSCRIBE` or `PSUBSCRIBE`;
    /// throws (and drops the connection) when none comes within the command timeout.
    public func nextPushedMessage() throws(RedisError) -> RedisReply {
        try locked { () throws(RedisError) -> RedisReply in
            try readReply(try connectedContext(), dropOnFailure: true)
        }
    }

    /// Drops the current context, if any, and connects again (AUTH and SELECT included).
    public func reconnect() throws(RedisError) {
        try locked { () throws(RedisError) in
            dropContext()
            _ = try connectedContext()
        }
    }

    /// Closes the socket; the next call connects again.
    public func close() {
        locked { dropContext() }
    }

    /// Runs `body` with the connected hiredis context, for calls this wrapper does not offer.
    ///
    /// The pointer must not escape `body`, nor be freed; the lock is held while `body` runs.
    public func withUnsafeHandle<R>(_ body: (UnsafeMutablePointer<redisContext>) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(try connectedContext())
    }

    /// Ignores SIGPIPE once per process, so a closed socket fails a write with EPIPE instead of killing the process.
    private static let ignoreSIGPIPE: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// Runs `body` with the lock held.
    private func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// The live context, connecting first when there is none, with a sent transaction's replies read and, unless
    /// `keepingGuardAhead`, the guard sent ahead undone. Call with the lock held.
    private func connectedContext(keepingGuardAhead: Bool = false) throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if let context, unreadReplies != nil { readSentReplies(context) }
        if let context {
            if !keepingGuardAhead { try disarmGuardAhead(context) }
            return context
        }
        let fresh = try openContext()
        do {
            try handshake(fresh)
        } catch {
            redisFree(fresh)
            throw error
        }
        context = fresh
        connects += 1
        return fresh
    }

    /// A freshly connected context with the command timeout applied, not yet authenticated.
    private func openContext() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        guard let fresh = redisConnectWithTimeout(options.host, Int32(clamping: options.port), Self.timeval(for: options.connectTimeout))
        else {
            throw RedisError(kind: .other, endpoint: options.endpoint, message: "cannot allocate a hiredis context")
        }
        if cs_redis_err(fresh) != 0 {
            let error = RedisError.fromContext(fresh, errno: cs_errno(), endpoint: options.endpoint, redacting: options.password)
            redisFree(fresh)
            throw error
        }
        let timeout = options.commandTimeout.map { Self.timeval(for: $0) } ?? Glibc.timeval(tv_sec: 0, tv_usec: 0)
        if redisSetTimeout(fresh, timeout) != REDIS_OK {
            let error = RedisError.fromContext(fresh, errno: cs_errno(), endpoint: options.endpoint, redacting: options.password)
            redisFree(fresh)
            throw error
        }
        return fresh
    }

    /// Sends AUTH and SELECT as the options ask; any error reply to AUTH is an authentication failure.
    private func handshake(_ fresh: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        if let password = options.password {
            let auth = ["AUTH"] + (options.user.map { [$0] } ?? []) + [password]
            if case .error(let text) = try roundTrip(fresh, [auth.map { Array($0.utf8) }], dropOnFailure: false)[0] {
                let mapped = RedisError.fromReply(text, endpoint: options.endpoint, redacting: password)
                throw RedisError(kind: .authentication, endpoint: options.endpoint, message: mapped.message)
            }
        }
        if options.db != 0 {
            let select = [Array("SELECT".utf8), Array(String(options.db).utf8)]
            if case .error(let text) = try roundTrip(fresh, [select], dropOnFailure: false)[0] {
                throw RedisError.fromReply(text, endpoint: options.endpoint, redacting: options.password)
            }
        }
    }

    /// Appends every command, then reads one reply per command; a transport failure breaks the connection.
    private func roundTrip(
        _ context: UnsafeMutablePointer<redisContext>, _ commands: [[[UInt8]]], dropOnFailure: Bool = true
    ) throws(RedisError) -> [RedisReply] {
        try roundTrip(context, RedisCommandBatch(commands), dropOnFailure: dropOnFailure)
    }

    /// Appends the batch's bytes as they are, then reads one reply per command.
    private func roundTrip(
        _ context: UnsafeMutablePointer<redisContext>, _ batch: RedisCommandBatch, dropOnFailure: Bool = true
    ) throws(RedisError) -> [RedisReply] {
        guard batch.count > 0 else { return [] }
        try append(context, batch, dropOnFailure: dropOnFailure)
        return try readReplies(context, batch.count, dropOnFailure: dropOnFailure)
    }

    /// Reads the next `count` replies.
    private func readReplies(_ context: UnsafeMutablePointer<redisContext>, _ count: Int, dropOnFailure: Bool)
        throws(RedisError) -> [RedisReply] {
        var replies: [RedisReply] = []
        replies.reserveCapacity(count)
        for _ in 0..<count {
            replies.append(try readReply(context, dropOnFailure: dropOnFailure))
        }
        return replies
    }

    /// Reads and drops the next `count` replies; a transport failure breaks the connection.
    ///
    /// hiredis builds no reply objects while the reader has no object functions: each reply read is then only its
    /// type, cast to a pointer, with nothing to free.
    private func skipReplies(_ context: UnsafeMutablePointer<redisContext>, _ count: Int) throws(RedisError) {
        try withReplyFunctions(context, nil, nil) { () throws(RedisError) in
            for _ in 0..<count {
                _ = try nextRawReply(context, dropOnFailure: true)
            }
        }
    }

    /// The outcome of a framed transaction from its `count` replies, as `awaitTransaction` gives it, read without
    /// building any reply: `EXEC`'s is summarized by the shim's reply functions.
    private func readExecSummary(_ context: UnsafeMutablePointer<redisContext>, _ count: Int) throws(RedisError) -> Int? {
        try skipReplies(context, count - 1)
        var summary = cs_reply_summary()
        try withUnsafeMutablePointer(to: &summary) { pointer throws(RedisError) in
            try withReplyFunctions(context, cs_summary_functions(), pointer) { () throws(RedisError) in
                _ = try nextRawReply(context, dropOnFailure: true)
            }
        }
        if summary.errors > 0 {
            let text = withUnsafeBytes(of: summary.error) { String(decoding: $0.prefix(summary.errorLength), as: UTF8.self) }
            throw RedisError.fromReply(text, endpoint: options.endpoint, redacting: options.password)
        }
        switch Int32(summary.type) {
        case REDIS_REPLY_ARRAY: return Int(summary.elements)
        case REDIS_REPLY_NIL: return nil
        default:
            throw RedisError(kind: .protocolViolation, endpoint: options.endpoint,
                             message: "EXEC answered a reply of type \(summary.type)")
        }
    }

    /// Runs `body` while the context's reader builds replies with `functions` (`nil`: none) and `privdata`, then
    /// gives it hiredis's own back — unless `body` dropped the context, and the reader with it.
    private func withReplyFunctions(_ context: UnsafeMutablePointer<redisContext>,
                                    _ functions: UnsafeMutablePointer<redisReplyObjectFunctions>?,
                                    _ privdata: UnsafeMutableRawPointer?,
                                    _ body: () throws(RedisError) -> Void) throws(RedisError) {
        let reader = context.pointee.reader!
        let saved = (reader.pointee.fn, reader.pointee.privdata)
        (reader.pointee.fn, reader.pointee.privdata) = (functions, privdata)
        defer { if self.context == context { (reader.pointee.fn, reader.pointee.privdata) = saved } }
        try body()
    }

    /// Appends the batch's bytes to hiredis's output buffer (written by the next read, or `redisBufferWrite`).
    private func append(
        _ context: UnsafeMutablePointer<redisContext>, _ batch: RedisCommandBatch, dropOnFailure: Bool
    ) throws(RedisError) {
        try checkNoEmptyCommand(batch)
        let status = batch.withBytes { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        if status != REDIS_OK { throw transportFailure(context, dropOnFailure: dropOnFailure) }
    }

    /// Redis would refuse a command without arguments: the batch is refused before any of it is sent.
    private func checkNoEmptyCommand(_ batch: RedisCommandBatch) throws(RedisError) {
        if batch.hasEmptyCommand {
            throw RedisError.invalidCommand("a command needs at least one argument", endpoint: options.endpoint)
        }
    }

    /// Reads the next reply from the socket (blocking up to the command timeout).
    private func readReply(_ context: UnsafeMutablePointer<redisContext>, dropOnFailure: Bool) throws(RedisError) -> RedisReply {
        let raw = try nextRawReply(context, dropOnFailure: dropOnFailure)
        defer { freeReplyObject(raw) }
        return RedisReply(copying: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// The next reply as hiredis parsed it, for the caller to free (`freeReplyObject`).
    private func nextRawReply(_ context: UnsafeMutablePointer<redisContext>, dropOnFailure: Bool)
        throws(RedisError) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let reply = raw else {
            if let raw { freeReplyObject(raw) }
            throw transportFailure(context, dropOnFailure: dropOnFailure)
        }
        return reply
    }

    /// Maps the context's error and, when asked, frees the broken context so the next call reconnects.
    private func transportFailure(_ broken: UnsafeMutablePointer<redisContext>, dropOnFailure: Bool) -> RedisError {
        let savedErrno = cs_errno()
        let error = RedisError.fromContext(broken, errno: savedErrno, endpoint: options.endpoint, redacting: options.password)
        if dropOnFailure { dropContext() }
        return error
    }

    /// Frees the context, if any. Call with the lock held.
    private func dropContext() {
        if let context { redisFree(context) }
        context = nil
        guardAhead = nil
        if unreadReplies != nil {
            unreadReplies = nil
            sentOutcome = .failure(RedisError(kind: .io, endpoint: options.endpoint,
                                              message: "the connection closed before the transaction's replies were read"))
        }
    }

    /// A `timeval` for a duration, rounded down to microseconds.
    private static func timeval(for duration: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
