/// Text that does not parse as a collection's `idType`.
public struct DocumentIDError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text that was given.
    public let text: String
    /// The id type it was parsed as.
    public let idType: IDType
    /// What the id type expects.
    public let expected: String

    /// An error for `text` parsed as `idType`.
    public init(text: String, idType: IDType, expected: String) {
        self.text = text
        self.idType = idType
        self.expected = expected
    }

    /// E.g. `id "abc" is not a valid objectId (expected 24 hexadecimal digits)`.
    public var description: String {
        "id \(ExtendedJSON.quoted(text)) is not a valid \(idType.rawValue) (expected \(expected))"
    }
}
