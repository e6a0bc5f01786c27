/// A Lua script run with `EVALSHA`, falling back to `EVAL` (which also caches it) when the server answers `NOSCRIPT`.
public struct RedisScript: Sendable, Hashable {
    /// The Lua source.
    public let source: String
    /// The lowercase hex SHA-1 of the source, the name `EVALSHA` uses.
    public let sha1: String

    /// A script with the given Lua source.
    public init(_ source: String) {
        self.source = source
        self.sha1 = SHA1.hex(Array(source.utf8))
    }

    /// Runs the script with binary-safe keys and arguments; an error raised by the script throws `.server`.
    public func run(on connection: some RedisClient, keys: [[UInt8]] = [], arguments: [[UInt8]] = []) throws(RedisError) -> RedisReply {
        do {
            return try connection.command(evalshaCommand(keys: keys, arguments: arguments))
        } catch where error.serverCode == "NOSCRIPT" {
            return try connection.command(evalCommand(keys: keys, arguments: arguments))
        }
    }

    /// Runs the script with text keys and arguments; an error raised by the script throws `.server`.
    public func run(on connection: some RedisClient, keys: [String], arguments: [String]) throws(RedisError) -> RedisReply {
        try run(on: connection, keys: keys.map { Array($0.utf8) }, arguments: arguments.map { Array($0.utf8) })
    }

    /// `EVALSHA sha numkeys keys... args...`, e.g. for a pipeline; on a `NOSCRIPT` reply send `evalCommand`.
    public func evalshaCommand(keys: [[UInt8]], arguments: [[UInt8]]) -> [[UInt8]] {
        [Array("EVALSHA".utf8), Array(sha1.utf8), Array(String(keys.count).utf8)] + keys + arguments
    }

    /// `EVAL source numkeys keys... args...`.
    public func evalCommand(keys: [[UInt8]], arguments: [[UInt8]]) -> [[UInt8]] {
        [Array("EVAL".utf8), Array(source.utf8), Array(String(keys.count).utf8)] + keys + arguments
    }
}
