/// A failed Redis call: what kind of failure, where, and whether reconnecting and retrying may help.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kinds of failure, each telling the caller what to do.
    public enum Kind: Sendable, Hashable {
        /// Nothing listens at the endpoint; reconnect and retry later.
        case connectionRefused
        /// A read or write on the socket failed; reconnect and retry.
        case io
        /// Connecting, reading or writing took longer than its timeout; reconnect and retry.
        case timeout
        /// The server closed the connection; reconnect and retry.
        case eof
        /// The server sent something that is not RESP; the connection is unusable.
        case protocolViolation
        /// The credentials were rejected or are missing (`WRONGPASS`, `NOAUTH`); fix the configuration.
        case authentication
        /// The server answered a command with an error reply; the connection is still usable.
        case server
        /// The command cannot be sent, e.g. it has no arguments; a programming error.
        case invalidCommand
        /// The server is a replica (`READONLY`), or not the master Sentinel named: the connection is dropped, and
        /// the next call reconnects to the current master; retry.
        case notMaster
        /// TLS could not be set up: a certificate that does not verify, a name that does not match, a missing
        /// client certificate, a file that cannot be read. Fix the configuration or the certificates; retrying
        /// helps only once they are fixed.
        case tls
        /// Any other hiredis failure, such as out of memory.
        case other
    }

    /// The kind of failure.
    public let kind: Kind
    /// `host:port` of the server.
    public let endpoint: String
    /// What happened, never containing a password; for server and authentication errors the server's error text.
    public let message: String

    /// Creates an error; `message` must not contain secrets.
    public init(kind: Kind, endpoint: String, message: String) {
        self.kind = kind
        self.endpoint = endpoint
        self.message = message
    }

    /// Whether the connection was lost: the next call reconnects, and retrying the command may succeed.
    public var isRetryable: Bool {
        switch kind {
        case .connectionRefused, .io, .timeout, .eof, .notMaster: true
        case .protocolViolation, .authentication, .server, .invalidCommand, .tls, .other: false
        }
    }

    /// Whether the server refused a write it would take later or for another key: `OOM` (over `maxmemory` without
    /// eviction) or `WRONGTYPE` (the key holds another type).
    public var isRefusedWrite: Bool {
        kind == .server && (serverCode == "OOM" || serverCode == "WRONGTYPE")
    }

    /// The error code of a server error reply (its first word, e.g. `NOSCRIPT`, `WRONGTYPE`, `ERR`).
    public var serverCode: String? {
        guard kind == .server || kind == .authentication else { return nil }
        guard let word = message.split(separator: " ", maxSplits: 1).first, word.allSatisfy({ $0.isUppercase }) else {
            return nil
        }
        return String(word)
    }

    /// `redis host:port: message`, with a hint on what to do for authentication failures.
    public var description: String {
        switch kind {
        case .authentication: "redis \(endpoint): authentication failed (\(message)); check the user and password"
        default: "redis \(endpoint): \(message)"
        }
    }
}
