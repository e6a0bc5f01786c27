import CMongoc

/// An error from libmongoc or a MongoDB server, classified by what a caller should do.
public struct MongoError: Error, Sendable, CustomStringConvertible {
    /// What the caller should do about it.
    public enum Kind: Sendable, Equatable {
        /// Network, server selection, step-down, restart: reopen with backoff, resume from the last token.
        case resumable
        /// The server no longer has the history the resume token needs (error 286, or a rejected token).
        case historyLost
        /// Authentication failed: retrying will not help until the credentials change.
        case authentication
        /// The URI or an option is invalid.
        case configuration
        /// The change stream was invalidated; reopen with `startAfter`.
        case invalidated
        /// An event is over the 16 MiB BSON limit (`BSONObjectTooLarge`, 10334): reopening the same stream fails
        /// the same way; reopen with a pipeline that makes the events smaller.
        case eventTooLarge
        /// Anything else: reported, and retried with backoff by long-running callers.
        case other
    }

    /// The classification.
    public let kind: Kind
    /// libbson/libmongoc error domain (0 when the error came from a server reply only).
    public let domain: UInt32
    /// The error code (a server code such as 286 when the server sent one).
    public let code: UInt32
    /// The error labels of the server reply, e.g. `ResumableChangeStreamError`.
    public let labels: [String]
    /// libmongoc's message (never contains the URI password: libmongoc does not print it).
    public let message: String
    /// What was being done.
    public let context: String

    /// An error with every field given.
    public init(kind: Kind, domain: UInt32 = 0, code: UInt32, labels: [String] = [], message: String, context: String) {
        self.kind = kind
        self.domain = domain
        self.code = code
        self.labels = labels
        self.message = message
        self.context = context
    }

    /// `context: message (domain d, code c[, labels])`.
    public var description: String {
        var text = "\(context): \(message) (domain \(domain), code \(code)"
        if !labels.isEmpty { text += ", labels \(labels.joined(separator: ","))" }
        return text + ")"
    }
}
