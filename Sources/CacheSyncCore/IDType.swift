/// How the read-through API parses `{id}`.
public enum IDType: String, Sendable, Equatable, CaseIterable {
    /// 24 hex digits → ObjectId, an integer → int, else string.
    case auto
    /// 24 hex digits, as an ObjectId.
    case objectId
    /// The text as it is.
    case string
    /// A decimal integer (int64).
    case int
    /// `8-4-4-4-12` hex digits, as a UUID (binary subtype 4).
    case uuid
}
