/// Why a BSON document is not a usable change event; names the field and the event type.
public enum ChangeEventError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A required field is missing.
    case missingField(String, operationType: String?)
    /// A field has the wrong BSON type.
    case wrongType(String, expected: String, found: String, operationType: String?)

    /// E.g. `update event: missing field documentKey._id`.
    public var description: String {
        switch self {
        case .missingField(let field, let op):
            "\(Self.context(op)): missing field \(field)"
        case .wrongType(let field, let expected, let found, let op):
            "\(Self.context(op)): field \(field) is \(found), expected \(expected)"
        }
    }

    private static func context(_ operationType: String?) -> String {
        operationType.map { "\($0) event" } ?? "change event"
    }
}
