/// A document-level change a strategy may act on.
public enum DocumentOperation: String, Sendable, Equatable, Hashable, CaseIterable {
    /// A new document.
    case insert
    /// A partial update (`$set`, `$inc`, ...).
    case update
    /// A whole-document replacement.
    case replace
    /// A removed document.
    case delete
}
