/// Why a text is not valid (canonical or relaxed) Extended JSON.
public struct ExtendedJSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public let message: String
    /// The UTF-8 byte offset where the problem was found.
    public let offset: Int

    /// An error at a byte offset.
    public init(_ message: String, at offset: Int) {
        self.message = message
        self.offset = offset
    }

    /// `<message> at byte <offset>`.
    public var description: String { "\(message) at byte \(offset)" }
}
