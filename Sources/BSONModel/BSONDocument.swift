/// A BSON document: fields in their stored order; keys may repeat, as in BSON itself.
public struct BSONDocument: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    /// The fields, in order.
    public var fields: [(key: String, value: BSONValue)]

    /// A document with these fields, in this order.
    public init(_ fields: [(key: String, value: BSONValue)] = []) {
        self.fields = fields
    }

    /// A document from a literal; the literal's order is kept.
    public init(dictionaryLiteral elements: (String, BSONValue)...) {
        self.fields = elements.map { (key: $0.0, value: $0.1) }
    }

    /// The first value stored under `key`, or `nil`.
    public subscript(key: String) -> BSONValue? {
        get { fields.first(where: { $0.key == key })?.value }
        set {
            if let i = fields.firstIndex(where: { $0.key == key }) {
                if let newValue { fields[i].value = newValue } else { fields.remove(at: i) }
            } else if let newValue {
                fields.append((key: key, value: newValue))
            }
        }
    }

    /// The keys, in order.
    public var keys: [String] { fields.map(\.key) }

    /// Whether the document has no fields.
    public var isEmpty: Bool { fields.isEmpty }

    /// Equal when the same fields are in the same order.
    public static func == (lhs: BSONDocument, rhs: BSONDocument) -> Bool {
        guard lhs.fields.count == rhs.fields.count else { return false }
        for (l, r) in zip(lhs.fields, rhs.fields) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }

    /// Hashes the fields in order.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(fields.count)
        for f in fields {
            hasher.combine(f.key)
            hasher.combine(f.value)
        }
    }
}
