/// A configuration problem, rendered as `file:line: field.path: message`.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The config file, as the user named it.
    public var file: String
    /// The 1-based line the problem is on, when it is known.
    public var line: Int?
    /// The dotted path of the field (`collections.products.strategy`); empty when the problem is not in a field.
    public var field: String
    /// What is wrong and, where possible, what is expected.
    public var message: String

    /// An error at a place in a file.
    public init(file: String, line: Int?, field: String = "", message: String) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
    }

    /// `cachesync.yaml:12: collections.products.strategy: unknown strategy "updat" (expected ...)`.
    public var description: String {
        var text = file
        if let line {
            text += ":\(line)"
        }
        text += ": "
        if !field.isEmpty {
            text += "\(field): "
        }
        return text + message
    }
}
