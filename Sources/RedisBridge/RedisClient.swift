/// What cachesync asks of Redis, one server (`RedisConnection`) or a cluster (`RedisCluster`, which routes each
/// command to the master of its key's slot).
///
/// In a cluster every command, pipelined command and script must name keys of one slot only.
public protocol RedisClient: AnyObject, Sendable {
    /// Sends one binary-safe command and returns its reply; an error reply throws `.server` (or `.authentication`).
    func command(_ arguments: [[UInt8]]) throws(RedisError) -> RedisReply
    /// Sends all commands, then reads all replies; error replies come back as `.error` values.
    func pipeline(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisReply]
    /// Throws the first error reply among `replies` as `command` would have: classified, the password redacted.
    func throwFirstError(in replies: [RedisReply]) throws(RedisError)
    /// Walks every key matching the glob `pattern` with `SCAN` (on every master of a cluster), a page at a time;
    /// `body` returns `false` to stop early.
    func scan(match pattern: String, count: Int, _ body: ([String]) throws -> Bool) throws
    /// Closes the sockets; the next call connects again.
    func close()
}

extension RedisClient {
    /// Sends one command of UTF-8 arguments and returns its reply; an error reply throws.
    public func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        try command(arguments.map { Array($0.utf8) })
    }

    /// `pipeline` of commands of UTF-8 arguments.
    public func pipeline(_ commands: [[String]]) throws(RedisError) -> [RedisReply] {
        try pipeline(commands.map { $0.map { Array($0.utf8) } })
    }

    /// `scan(match:count:_:)` 500 keys a page.
    public func scan(match pattern: String, _ body: ([String]) throws -> Bool) throws {
        try scan(match: pattern, count: 500, body)
    }
}
