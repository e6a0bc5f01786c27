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
public final class RedisConnection: RedisClient, @unchecked Sendable {
    /// The endpoint, database, credentials and timeouts this connection uses.
    public let options: RedisConnectionOptions

    private let lock = NSLock()
    /// The hiredis context while connected. The members below are the module's, for the extensions in
    /// `RedisConnection+*.swift`, and are used with the lock held.
    var context: UnsafeMutablePointer<redisContext>?
    /// The password read from `options.passwordFile` at the last connect.
    var filePassword: String?
    /// The TLS session on `context`'s socket, which then does every read and write; `nil` for plaintext.
    var tlsSession: RedisTLSSession?
    private var connects = 0
    /// What was sent ahead of the next call: a transaction, its outcome, the guard for the next one.
    var sentAhead = RedisSentAhead.nothing
    /// Behind Sentinel: the announced master switches, and how many there had been when this context connected.
    private let masterSwitches: RedisMasterSwitches?
    private var masterSwitchesSeen = 0

    /// Creates a connection; with `connectNow` it connects at once and throws if that fails.
    public init(options: RedisConnectionOptions, connectNow: Bool = true) throws(RedisError) {
        _ = Self.ignoreSIGPIPE
        self.options = options
        masterSwitches = options.sentinel.map(RedisMasterSwitches.of)
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
            if keepingGuardAhead, case .transaction = sentAhead, let context {
                try append(context, laidOut, dropOnFailure: true)
                readSentReplies(context)
                guard self.context != nil else {
                    if case .outcome(.failure(let error), _) = sentAhead { throw error }
                    throw RedisError(kind: .io, endpoint: options.endpoint,
                                     message: "the connection closed before the command's reply was read")
                }
                return try readReply(context, dropOnFailure: true)
            }
            return try roundTrip(try connectedContext(keepingGuardAhead: keepingGuardAhead), laidOut)[0]
        }
        if case .error(let text) = reply {
            throw locked { replyError(text) }
        }
        return reply
    }

    /// Binary-safe `pipeline`: all commands are written, then all replies read; error replies are `.error` values.
    public func pipeline(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        return try locked { () throws(RedisError) -> [RedisReply] in
            try roundTrip(try connectedContext(), commands)
        }
    }

    /// `pipeline` of commands laid out beforehand (`RedisCommandBatch`).
    public func pipeline(_ laidOut: RedisCommandBatch) throws(RedisError) -> [RedisReply] {
        guard laidOut.count > 0 else { return [] }
        return try locked { () throws(RedisError) -> [RedisReply] in
            try roundTrip(try connectedContext(), laidOut)
        }
    }

    /// Throws the first error reply among `replies` (of `pipeline` or `transaction`) as `command` would have:
    /// classified (`.authentication` or `.server`) and with the password redacted.
    public func throwFirstError(in replies: [RedisReply]) throws(RedisError) {
        for case .error(let text) in replies {
            throw locked { replyError(text) }
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

    /// Runs `body` with the connected hiredis context, for calls this wrapper does not offer (the benchmark's raw
    /// loop; nothing in the product). Plaintext only: hiredis's own I/O would bypass a TLS session.
    ///
    /// The pointer must not escape `body`, nor be freed; the lock is held while `body` runs.
    package func withUnsafeHandle<R>(_ body: (UnsafeMutablePointer<redisContext>) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        let context = try connectedContext()
        precondition(tlsSession == nil, "withUnsafeHandle on a TLS connection")
        return try body(context)
    }

    /// Ignores SIGPIPE once per process, so a closed socket fails a write with EPIPE instead of killing the process.
    private static let ignoreSIGPIPE: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// Runs `body` with the lock held.
    func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// The live context, connecting first when there is none, with a sent transaction's replies read and, unless
    /// `keepingGuardAhead`, the guard sent ahead undone. Call with the lock held.
    func connectedContext(keepingGuardAhead: Bool = false) throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if let context { readSentReplies(context) }
        // (Reading them fails, and frees the context, when the connection broke meanwhile: connect again below.)
        if let context {
            if let masterSwitches, masterSwitches.current != masterSwitchesSeen {
                // The sentinels announced another master since this context connected: ask them again.
                dropContext()
            } else {
                if !keepingGuardAhead { try disarmGuardAhead(context) }
                return context
            }
        }
        // Noted before the sentinels are asked, so a switch announced meanwhile means one more reconnect.
        masterSwitchesSeen = masterSwitches?.current ?? 0
        let (fresh, session) = try openContext()
        context = fresh
        tlsSession = session
        do {
            try handshake(fresh)
            try confirmMaster(fresh)
        } catch {
            // The handshake reads with dropOnFailure: false, so the context is still this one; drop it.
            dropContext()
            throw error
        }
        connects += 1
        return fresh
    }

    /// The error for an error reply: classified, with the password redacted. A server that is not the master
    /// (`READONLY`: a replica, such as a master Sentinel demoted) drops the connection, so the next call
    /// reconnects to the current master. Call with the lock held.
    func replyError(_ text: String) -> RedisError {
        let error = RedisError.fromReply(text, endpoint: options.endpoint, redacting: secret)
        if error.kind == .notMaster { dropContext() }
        return error
    }

    /// The password in use, which no error message may hold.
    var secret: String? { filePassword ?? options.password }

    /// Frees the context, if any: a guard sent ahead goes with it, and a transaction whose replies were not read
    /// fails. Call with the lock held.
    func dropContext() {
        tlsSession = nil
        if let context { redisFree(context) }
        context = nil
        if case .transaction = sentAhead {
            sentAhead = .outcome(.failure(RedisError(kind: .io, endpoint: options.endpoint,
                                                     message: "the connection closed before the transaction's replies were read")),
                                 guard: nil)
        } else if case .pipeline = sentAhead {
            sentAhead = .replies(.failure(RedisError(kind: .io, endpoint: options.endpoint,
                                                     message: "the connection closed before the pipeline's replies were read")))
        } else {
            sentAhead = sentAhead.withoutGuard
        }
    }
}
