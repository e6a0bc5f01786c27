/// The cache strategy of a collection (docs/ARCHITECTURE.md §4).
public enum StrategyKind: String, Sendable, Equatable, CaseIterable {
    /// Delete the cached key when the document changes.
    case invalidate
    /// Write the new document, with an adaptive TTL.
    case update
    /// Refresh a cached document, keeping its remaining TTL.
    case preserveTTL = "preserve-ttl"

    /// The document operations applied when the config lists none.
    public var defaultOperations: Set<DocumentOperation> {
        switch self {
        case .invalidate: [.update, .replace, .delete]
        case .update, .preserveTTL: [.insert, .update, .replace, .delete]
        }
    }
}
