import BSONModel

/// One of a collection's `indexes`: a secondary key (`user:email:{email}`) kept in step with its document, holding
/// the primary key's name or a copy of the cached value (docs/ARCHITECTURE.md §4, "Secondary keys").
public struct SecondaryIndex: Sendable, Equatable {
    /// What a secondary key holds.
    public enum Value: String, Sendable, Equatable, CaseIterable {
        /// The primary key's name (`users:42`).
        case key
        /// A copy of the cached value.
        case document
    }

    /// One piece of the template.
    public enum Part: Sendable, Equatable {
        case literal(String)
        /// A dotted field path of the document.
        case field([String])
        case id, database, collection
    }

    /// The template as written.
    public var template: String
    /// What the key holds.
    public var value: Value
    /// The template split into its parts.
    public var parts: [Part]

    /// An index of `template`'s parts (`SecondaryIndex.parse` checks them).
    public init(template: String, value: Value, parts: [Part]) {
        self.template = template
        self.value = value
        self.parts = parts
    }

    /// Why a document has no key for an index (`cachesync_index_keys_skipped_total{reason}`).
    public enum Skip: String, Error, Sendable, Equatable, CaseIterable {
        /// A field of the template is missing (or null).
        case missing
        /// A field of the template holds a value that has no key text (only strings, integers and ObjectIds do).
        case type
    }

    /// The template's parts; `nil` with a reason when it is not a valid template (an unclosed brace, an empty
    /// placeholder, no field placeholder).
    public static func parse(_ template: String) -> Result<[Part], TemplateError> {
        var parts: [Part] = []
        var rest = Substring(template)
        var literal = ""
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{" else { return .failure(.unmatchedClose) }
            guard let close = rest[open...].firstIndex(of: "}") else { return .failure(.unclosed) }
            literal += rest[..<open]
            if !literal.isEmpty { parts.append(.literal(literal)) }
            literal = ""
            let name = String(rest[rest.index(after: open)..<close])
            switch name {
            case "id": parts.append(.id)
            case "db": parts.append(.database)
            case "coll": parts.append(.collection)
            default:
                let path = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                guard !name.hasPrefix("$"), !path.contains(where: \.isEmpty) else { return .failure(.badField(name)) }
                parts.append(.field(path))
            }
            rest = rest[rest.index(after: close)...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        guard parts.contains(where: { if case .field = $0 { true } else { false } }) else { return .failure(.noField) }
        return .success(parts)
    }

    /// What is wrong with a template.
    public enum TemplateError: Error, Equatable, CustomStringConvertible {
        case unmatchedClose, unclosed, noField
        case badField(String)

        public var description: String {
            switch self {
            case .unmatchedClose: "has an unmatched \"}\""
            case .unclosed: "has an unclosed \"{\""
            case .noField: "has no field placeholder (e.g. {email}): every document would claim the same key"
            case .badField(let name): "\"{\(name)}\" is not a field path (names joined by dots, e.g. {address.city})"
            }
        }
    }

    /// The dotted field paths the template reads.
    public var fieldPaths: [[String]] {
        parts.compactMap { if case .field(let path) = $0 { path } else { nil } }
    }

    /// The key of `document` (the whole document, before any projection) behind `keyPrefix`, or why it has none.
    public func key(of document: BSONDocument, id: BSONValue, keyPrefix: String, database: String,
                    collection: String) -> Result<String, Skip> {
        key(field: { document[$0] }, id: id, keyPrefix: keyPrefix, database: database, collection: collection)
    }

    /// `key(of:…)` of the document whose top-level fields `field` looks up (an encoded document's, decoding only
    /// the fields the template reads).
    public func key(field: (String) -> BSONValue?, id: BSONValue, keyPrefix: String, database: String,
                    collection: String) -> Result<String, Skip> {
        var text = keyPrefix
        for part in parts {
            switch part {
            case .literal(let literal): text += literal
            case .id: text += DocumentID.keyText(id)
            case .database: text += database
            case .collection: text += collection
            case .field(let path):
                switch Self.keyText(at: path[...], field: field) {
                case .success(let value): text += value
                case .failure(let skip): return .failure(skip)
                }
            }
        }
        // The record of a document's secondary keys separates them with NUL: a key holding one has no key text.
        guard !text.utf8.contains(0) else { return .failure(.type) }
        return .success(text)
    }

    /// The key text of the value at `path` (through embedded documents only): a string as it is, an integer in
    /// decimal, an ObjectId in hex.
    static func keyText(at path: ArraySlice<String>, field: (String) -> BSONValue?) -> Result<String, Skip> {
        guard let name = path.first, let value = field(name) else { return .failure(.missing) }
        if path.count > 1 {
            if case .document(let inner) = value { return keyText(at: path.dropFirst(), field: { inner[$0] }) }
            return value == .null ? .failure(.missing) : .failure(.type)
        }
        switch value {
        case .string(let text): return .success(text)
        case .int32(let n): return .success(String(n))
        case .int64(let n): return .success(String(n))
        case .objectId: return .success(DocumentID.keyText(value))
        case .null, .undefined: return .failure(.missing)
        default: return .failure(.type)
        }
    }

    /// Whether a key of this index could also be one of `collection`'s own keys (or the reverse): the literal text
    /// before the first placeholder of one starts with the other's, so their `SCAN` patterns may meet.
    public func mayOverlapKeys(of collection: CollectionConfig, keyPrefix: String) -> Bool {
        let own = CacheKey.Layout(collection: collection, keyPrefix: "").key(idText: "\u{0}").text
        let ownLead = keyPrefix + String(own.prefix { $0 != "\u{0}" })
        var lead = keyPrefix
        for part in parts {
            switch part {
            case .literal(let text): lead += text
            case .database: lead += collection.database
            case .collection: lead += collection.collection
            case .id, .field: return lead.hasPrefix(ownLead) || ownLead.hasPrefix(lead)
            }
        }
        return true
    }

    /// A `SCAN MATCH` glob for every key of the index (placeholders of fields and `{id}` → `*`).
    public func pattern(keyPrefix: String, database: String, collection: String) -> String {
        var pattern = CacheKey.escapeGlob(keyPrefix)
        for part in parts {
            switch part {
            case .literal(let literal): pattern += CacheKey.escapeGlob(literal)
            case .database: pattern += CacheKey.escapeGlob(database)
            case .collection: pattern += CacheKey.escapeGlob(collection)
            case .id, .field: pattern += "*"
            }
        }
        return pattern
    }

    /// The text the only field placeholder stands for in `key`, when the template has exactly one placeholder (a
    /// field): what `verify` looks the key's documents up by. `nil` otherwise or when `key` does not fit.
    public func soleFieldText(of key: String, keyPrefix: String, database: String, collection: String) -> (path: [String], text: String)? {
        var before = keyPrefix
        var after = ""
        var field: [String]?
        for part in parts {
            let literal: String
            switch part {
            case .literal(let text): literal = text
            case .database: literal = database
            case .collection: literal = collection
            case .id: return nil
            case .field(let path):
                guard field == nil else { return nil }
                field = path
                continue
            }
            if field == nil { before += literal } else { after += literal }
        }
        guard let field, key.hasPrefix(before), key.hasSuffix(after), key.utf8.count >= before.utf8.count + after.utf8.count
        else { return nil }
        return (field, String(decoding: key.utf8.dropFirst(before.utf8.count).dropLast(after.utf8.count), as: UTF8.self))
    }
}
