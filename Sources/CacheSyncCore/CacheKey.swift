import BSONModel

/// A Redis key of one cached document: `redis.keyPrefix` + the collection's `keyTemplate` rendered.
public struct CacheKey: Sendable, Hashable, CustomStringConvertible {
    /// The full key text.
    public let text: String

    /// Wraps a key text as it is.
    public init(text: String) {
        self.text = text
    }

    /// Renders `template` (`{db}`, `{coll}`, `{id}`) behind `keyPrefix`; placeholder values are not re-scanned.
    public init(template: String, keyPrefix: String, database: String, collection: String, idText: String) {
        self.text = keyPrefix + CacheKey.render(template) { placeholder in
            switch placeholder {
            case .database: database
            case .collection: collection
            case .id: idText
            }
        }
    }

    /// The key of the document with this `_id` in a collection.
    public init(collection: CollectionConfig, keyPrefix: String, id: BSONValue) {
        self.init(template: collection.keyTemplate, keyPrefix: keyPrefix, database: collection.database,
                  collection: collection.collection, idText: DocumentID.keyText(id))
    }

    /// `<key>:access_count`, the read counter that drives the adaptive TTL.
    public var accessCountKey: String { text + ":access_count" }

    /// `<key>:lease`, the read-through lease every cache write and delete clears.
    public var leaseKey: String { text + ":lease" }

    /// The key text.
    public var description: String { text }

    /// Keys are equal when their bytes are: Redis does not apply Unicode canonical equivalence, so neither do we.
    public static func == (lhs: CacheKey, rhs: CacheKey) -> Bool {
        lhs.text.utf8.elementsEqual(rhs.text.utf8)
    }

    /// Hashes the key's bytes, matching `==`.
    public func hash(into hasher: inout Hasher) {
        for byte in text.utf8 { hasher.combine(byte) }
    }

    /// A `SCAN MATCH` glob for every key of a collection (`{id}` → `*`, glob characters in literal parts escaped).
    ///
    /// It also matches the derived `:access_count` and `:lease` keys, which a flush removes too.
    public static func collectionPattern(collection: CollectionConfig, keyPrefix: String) -> String {
        collectionPattern(template: collection.keyTemplate, keyPrefix: keyPrefix,
                          database: collection.database, collection: collection.collection)
    }

    /// A `SCAN MATCH` glob for every key a template gives in one collection.
    public static func collectionPattern(template: String, keyPrefix: String, database: String, collection: String) -> String {
        var pattern = escapeGlob(keyPrefix)
        pattern += render(template, literal: escapeGlob) { placeholder in
            switch placeholder {
            case .database: escapeGlob(database)
            case .collection: escapeGlob(collection)
            case .id: "*"
            }
        }
        return pattern
    }

    /// Escapes the Redis glob characters `* ? [ ] \` with a backslash.
    public static func escapeGlob(_ text: String) -> String {
        var out = ""
        for c in text {
            if "*?[]\\".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }

    private enum Placeholder: CaseIterable {
        case database, collection, id

        var token: String {
            switch self {
            case .database: "{db}"
            case .collection: "{coll}"
            case .id: "{id}"
            }
        }
    }

    /// One left-to-right pass over `template`: placeholders replaced by `value`, other runs passed through `literal`.
    private static func render(_ template: String, literal: (String) -> String = { $0 },
                               value: (Placeholder) -> String) -> String {
        let utf8 = template.utf8
        var out = ""
        var runStart = utf8.startIndex
        var i = runStart
        while i < utf8.endIndex {
            if utf8[i] == UInt8(ascii: "{"),
               let placeholder = Placeholder.allCases.first(where: { utf8[i...].starts(with: $0.token.utf8) }) {
                out += literal(String(template[runStart..<i])) + value(placeholder)
                i = utf8.index(i, offsetBy: placeholder.token.utf8.count)
                runStart = i
            } else {
                i = utf8.index(after: i)
            }
        }
        return out + literal(String(template[runStart..<i]))
    }
}
