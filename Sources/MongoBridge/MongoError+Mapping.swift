import BSONModel
import CMongoc

extension MongoError {
    /// Server codes that mean the change stream's history is gone or the token is unusable.
    static let historyLostCodes: Set<UInt32> = [
        286, // ChangeStreamHistoryLost
        280, // ChangeStreamFatalError (e.g. resume token not found in the oplog)
        136, // CappedPositionLost
    ]

    /// Server codes that are resumable per the change-stream spec, besides the label.
    static let resumableCodes: Set<UInt32> = [
        6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 13388, 234, 133, 43,
    ]

    /// The one place where libmongoc `(domain, code)` pairs and server replies become a `MongoError`.
    init(bsonError error: bson_error_t, reply: BSONDocument? = nil, context: String) {
        let message = withUnsafeBytes(of: error.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        var labels: [String] = []
        if case .array(let values)? = reply?["errorLabels"] {
            labels = values.compactMap { if case .string(let s) = $0 { s } else { nil } }
        }
        let domain = error.domain
        let code = error.code
        let kind: Kind
        if labels.contains("ResumableChangeStreamError") || labels.contains("NetworkError")
            || labels.contains("RetryableWriteError") {
            kind = .resumable
        } else if domain == MONGOC_ERROR_SERVER.rawValue || domain == MONGOC_ERROR_QUERY.rawValue
            || domain == MONGOC_ERROR_WRITE_CONCERN.rawValue {
            if Self.historyLostCodes.contains(code) {
                kind = .historyLost
            } else if code == 18 || code == 13 {
                kind = .authentication
            } else if code == 260 {
                kind = .invalidated
            } else if code == 10334 {
                kind = .eventTooLarge
            } else if Self.resumableCodes.contains(code) {
                kind = .resumable
            } else {
                kind = .other
            }
        } else if domain == MONGOC_ERROR_STREAM.rawValue || domain == MONGOC_ERROR_SERVER_SELECTION.rawValue
            || domain == MONGOC_ERROR_PROTOCOL.rawValue {
            kind = .resumable
        } else if domain == MONGOC_ERROR_CLIENT.rawValue && code == MONGOC_ERROR_CLIENT_AUTHENTICATE.rawValue {
            kind = .authentication
        } else if domain == MONGOC_ERROR_COMMAND.rawValue && code == MONGOC_ERROR_COMMAND_INVALID_ARG.rawValue {
            kind = .configuration
        } else {
            kind = .other
        }
        self.init(kind: kind, domain: domain, code: code, labels: labels, message: message, context: context)
    }
}
