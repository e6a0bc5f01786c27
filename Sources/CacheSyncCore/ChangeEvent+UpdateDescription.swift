import BSONModel

/// The `updateDescription` of an update event.
extension ChangeEvent {
    /// Which fields an update changed; informational (strategies act on `fullDocument`).
    public struct UpdateDescription: Sendable, Equatable {
        /// Fields set, by dotted path.
        public var updatedFields: BSONDocument
        /// Dotted paths removed.
        public var removedFields: [String]
        /// Arrays shortened: path and new size.
        public var truncatedArrays: [TruncatedArray]
        /// Paths whose dotted form is ambiguous (MongoDB 6.1+), as the server sent them.
        public var disambiguatedPaths: BSONDocument

        /// An update description.
        public init(updatedFields: BSONDocument = [:], removedFields: [String] = [],
                    truncatedArrays: [TruncatedArray] = [], disambiguatedPaths: BSONDocument = [:]) {
            self.updatedFields = updatedFields
            self.removedFields = removedFields
            self.truncatedArrays = truncatedArrays
            self.disambiguatedPaths = disambiguatedPaths
        }
    }

    /// One entry of `truncatedArrays`.
    public struct TruncatedArray: Sendable, Equatable {
        /// Dotted path of the array.
        public var field: String
        /// Its new length.
        public var newSize: Int

        /// A truncated array.
        public init(field: String, newSize: Int) {
            self.field = field
            self.newSize = newSize
        }
    }
}
