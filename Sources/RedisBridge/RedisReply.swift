import Foundation

/// One reply from Redis, copied out of hiredis into Swift values.
public enum RedisReply: Sendable, Hashable {
    /// A simple status such as `OK` or `PONG`.
    case status(String)
    /// An error reply, e.g. `WRONGTYPE Operation against a key holding the wrong kind of value`.
    case error(String)
    /// An integer reply.
    case integer(Int64)
    /// A bulk string, binary-safe.
    case string([UInt8])
    /// A nil bulk string or nil array.
    case null
    /// A multi-bulk reply.
    case array([RedisReply])

    /// The text of a status, error or bulk string reply; `nil` for other replies and for bytes that are not UTF-8.
    public var text: String? {
        switch self {
        case .status(let text), .error(let text): text
        case .string(let bytes): String(bytes: bytes, encoding: .utf8)
        case .integer, .null, .array: nil
        }
    }

    /// The bytes of a bulk string reply.
    public var bytes: [UInt8]? {
        if case .string(let bytes) = self { bytes } else { nil }
    }

    /// The value of an integer reply.
    public var integer: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    /// The elements of an array reply.
    public var array: [RedisReply]? {
        if case .array(let elements) = self { elements } else { nil }
    }

    /// Whether this is a nil reply.
    public var isNull: Bool { self == .null }

    /// Whether this is an error reply.
    public var isError: Bool {
        if case .error = self { true } else { false }
    }
}
