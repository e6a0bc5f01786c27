/// The `operationType` of a change event.
extension ChangeEvent {
    /// What a change event reports; types this version does not know are kept as `.unknown`.
    public enum OperationType: Sendable, Equatable, Hashable, CustomStringConvertible {
        /// A document was inserted.
        case insert
        /// A document was updated in place.
        case update
        /// A document was replaced as a whole.
        case replace
        /// A document was deleted.
        case delete
        /// The collection was dropped.
        case drop
        /// The collection was renamed (see `ChangeEvent.renamedTo`).
        case rename
        /// The database was dropped.
        case dropDatabase
        /// The stream cannot go on (after drop, rename, dropDatabase); the watcher reopens it.
        case invalidate
        /// Any other type (`create`, `createIndexes`, `modify`, …): ignored, counted by the caller.
        case unknown(String)

        /// The type named by an `operationType` string.
        public init(_ name: String) {
            var name = name
            self = name.withUTF8(Self.init(utf8:))
        }

        /// The type named by the UTF-8 bytes of an `operationType` string.
        init(utf8 name: UnsafeBufferPointer<UInt8>) {
            self = Self.known.value(named: name) ?? .unknown(String(decoding: name, as: UTF8.self))
        }

        private static let known = KnownNames([insert, update, replace, delete, drop, rename, dropDatabase, invalidate]
            .map { ($0.description, $0) })

        /// The `operationType` string.
        public var description: String {
            switch self {
            case .insert: "insert"
            case .update: "update"
            case .replace: "replace"
            case .delete: "delete"
            case .drop: "drop"
            case .rename: "rename"
            case .dropDatabase: "dropDatabase"
            case .invalidate: "invalidate"
            case .unknown(let name): name
            }
        }

        /// The document-level operation a strategy acts on, for insert, update, replace and delete.
        public var documentOperation: DocumentOperation? {
            switch self {
            case .insert: .insert
            case .update: .update
            case .replace: .replace
            case .delete: .delete
            default: nil
            }
        }
    }
}
