import BSONModel
import MongoBridge

/// Where a change stream continues: after a token (`resumeAfter`), or after an `invalidate` (`startAfter`).
public enum Checkpoint: Sendable, Equatable {
    /// Resume after this event's token.
    case resumeAfter(BSONDocument)
    /// Start after this token; the only way past an `invalidate` event.
    case startAfter(BSONDocument)

    /// The text stored in Redis: canonical Extended JSON of `{resumeAfter: token}` or `{startAfter: token}`.
    public var storedText: String {
        switch self {
        case .resumeAfter(let token): BSONHandle(["resumeAfter": .document(token)]).canonicalExtendedJSON
        case .startAfter(let token): BSONHandle(["startAfter": .document(token)]).canonicalExtendedJSON
        }
    }

    /// Reads a stored checkpoint; `nil` when the text is not one.
    public init?(storedText: String) {
        guard let doc = try? BSONDocument(extendedJSON: storedText) else { return nil }
        if case .document(let token)? = doc["resumeAfter"] {
            self = .resumeAfter(token)
        } else if case .document(let token)? = doc["startAfter"] {
            self = .startAfter(token)
        } else {
            return nil
        }
    }

    /// Change-stream options that continue from here.
    func apply(to options: inout ChangeStreamOptions) {
        switch self {
        case .resumeAfter(let token): options.resumeAfter = token
        case .startAfter(let token): options.startAfter = token
        }
    }
}
