import BSONModel
import RedisSlot

/// A Redis key of one cached document: `redis.keyPrefix` + the collection's `keyTemplate` rendered.
public struct CacheKey: Sendable, Hashable, CustomStringConvertible {
    /// The full key text.
    public let text: String
    /// Whether the derived keys (`leaseKey`, `accessCountKey`) carry a hash tag that puts them in this key's Redis
    /// Cluster slot (`{products:42}:lease`), so one script or transaction may use the key and them together.
    public let colocatesDerivedKeys: Bool

    /// Wraps a key text as it is.
    public init(text: String, colocatesDerivedKeys: Bool = false) {
        self.text = text
        self.colocatesDerivedKeys = colocatesDerivedKeys
    }

    /// Renders `template` (`{db}`, `{coll}`, `{id}`) behind `keyPrefix`; placeholder values are not re-scanned.
    public init(template: String, keyPrefix: String, database: String, collection: String, idText: String) {
        self = Layout(template: template, keyPrefix: keyPrefix, database: database, collection: collection)
            .key(idText: idText)
    }

    /// The key of the document with this `_id` in a collection.
    public init(collection: CollectionConfig, keyPrefix: String, id: BSONValue, colocatingDerivedKeys: Bool = false) {
        self = Layout(collection: collection, keyPrefix: keyPrefix, colocatingDerivedKeys: colocatingDerivedKeys).key(id: id)
    }

    /// A collection's keys with everything but `{id}` rendered once: the literal runs between its `{id}`s.
    public struct Layout: Sendable {
        /// The prefix every key starts with (`redis.keyPrefix`).
        public let keyPrefix: String
        /// Whether the keys' derived keys share their cluster slot (`CacheKey.colocatesDerivedKeys`).
        public let colocatesDerivedKeys: Bool
        /// `keyPrefix` and the template rendered, split at each `{id}`, as UTF-8.
        private var runs: [[UInt8]] = []
        /// The bytes of all runs together.
        private var runsLength = 0

        /// The layout of `template` behind `keyPrefix` in one collection.
        public init(template: String, keyPrefix: String, database: String, collection: String,
                    colocatingDerivedKeys: Bool = false) {
            self.keyPrefix = keyPrefix
            colocatesDerivedKeys = colocatingDerivedKeys
            var texts = [keyPrefix]
            CacheKey.scan(template, literal: { texts[texts.count - 1] += $0 }) { placeholder in
                switch placeholder {
                case .database: texts[texts.count - 1] += database
                case .collection: texts[texts.count - 1] += collection
                case .id: texts.append("")
                }
            }
            runs = texts.map { Array($0.utf8) }
            runsLength = runs.reduce(0) { $0 + $1.count }
        }

        /// The layout of a collection's keys.
        public init(collection: CollectionConfig, keyPrefix: String, colocatingDerivedKeys: Bool = false) {
            self.init(template: collection.keyTemplate, keyPrefix: keyPrefix, database: collection.database,
                      collection: collection.collection, colocatingDerivedKeys: colocatingDerivedKeys)
        }

        /// The key of the document with this `_id`.
        public func key(id: BSONValue) -> CacheKey {
            DocumentID.withKeyText(id) { key(idUTF8: $0) }
        }

        /// The key whose `{id}` text is `idText`.
        public func key(idText: String) -> CacheKey {
            var idText = idText
            return idText.withUTF8 { key(idUTF8: $0) }
        }

        /// The `{id}` text of `key` when the template has exactly one `{id}` and `key` fits it; `nil` otherwise.
        public func idText(of key: String) -> String? {
            guard runs.count == 2, key.utf8.count >= runsLength, key.utf8.starts(with: runs[0]),
                  key.utf8.reversed().starts(with: runs[1].reversed()) else { return nil }
            return String(decoding: key.utf8.dropFirst(runs[0].count).dropLast(runs[1].count), as: UTF8.self)
        }

        /// The runs with `id` between each two, written into the key's storage in one pass.
        private func key(idUTF8 id: UnsafeBufferPointer<UInt8>) -> CacheKey {
            let length = runsLength + (runs.count - 1) * id.count
            let text = String(unsafeUninitializedCapacity: length) { out in
                var end = 0
                for (index, run) in runs.enumerated() {
                    if index > 0 {
                        end += UnsafeMutableBufferPointer(rebasing: out[end...]).initialize(fromContentsOf: id)
                    }
                    end += UnsafeMutableBufferPointer(rebasing: out[end...]).initialize(fromContentsOf: run)
                }
                return end
            }
            return CacheKey(text: text, colocatesDerivedKeys: colocatesDerivedKeys)
        }
    }

    /// `<key>:access_count`, the read counter that drives the adaptive TTL (`derivedKey`).
    public var accessCountKey: String { derivedKey(Self.accessCountSuffix) }

    /// What `accessCountKey` adds to the key.
    public static let accessCountSuffix = ":access_count"

    /// `<key>:lease`, the read-through lease every cache write and delete clears (`derivedKey`).
    public var leaseKey: String { derivedKey(Self.leaseSuffix) }

    /// The key plus `suffix`; with `colocatesDerivedKeys`, named so that Redis Cluster puts it in this key's slot:
    /// a key with a hash tag keeps it (`{user:1}:a:lease`), one without a `}` is the tag (`{products:42}:lease`),
    /// and any other (a `}` but no valid tag) is led by a short tag of its slot (`{3lx}a}b:lease`).
    public func derivedKey(_ suffix: String) -> String {
        guard colocatesDerivedKeys else { return text + suffix }
        var text = text
        return text.withUTF8 { key in
            if !key.contains(UInt8(ascii: "}")) { return Self.joined("{", key, "}" + suffix) }
            if RedisSlot.hashTag(key) != nil { return Self.joined("", key, suffix) }
            return Self.joined("{" + RedisSlot.tag(forSlot: RedisSlot.of(utf8: key)) + "}", key, suffix)
        }
    }

    /// Whether every derived key is `{<text>}<suffix>` (a colocating key without a `}`, so without a hash tag): the
    /// cluster's scripts then name the lease themselves instead of receiving it.
    public var derivedKeyWrapsText: Bool {
        colocatesDerivedKeys
            && !(text.utf8.withContiguousStorageIfAvailable { $0.contains(UInt8(ascii: "}")) }
                 ?? text.utf8.contains(UInt8(ascii: "}")))
    }

    /// `head`, `key` and `tail` in one string, written into its storage at once (a derived key is made per write).
    private static func joined(_ head: String, _ key: UnsafeBufferPointer<UInt8>, _ tail: String) -> String {
        var head = head, tail = tail
        return head.withUTF8 { head in
            tail.withUTF8 { tail in
                String(unsafeUninitializedCapacity: head.count + key.count + tail.count) { out in
                    var end = UnsafeMutableBufferPointer(rebasing: out[...]).initialize(fromContentsOf: head)
                    end += UnsafeMutableBufferPointer(rebasing: out[end...]).initialize(fromContentsOf: key)
                    end += UnsafeMutableBufferPointer(rebasing: out[end...]).initialize(fromContentsOf: tail)
                    return end
                }
            }
        }
    }

    /// A `SCAN MATCH` glob for the derived keys that `colocatesDerivedKeys` names `{<key>}<suffix>`, of every key
    /// `keyPattern` (a `collectionPattern`) matches; derived keys of keys with a `}` but no hash tag are not matched
    /// (they expire on their own).
    public static func colocatedDerivedPattern(_ keyPattern: String) -> String {
        "{" + keyPattern + "}:*"
    }

    /// What `leaseKey` adds to the key.
    public static let leaseSuffix = ":lease"

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
        scan(template, literal: { pattern += escapeGlob($0) }) { placeholder in
            switch placeholder {
            case .database: pattern += escapeGlob(database)
            case .collection: pattern += escapeGlob(collection)
            case .id: pattern += "*"
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

    /// One left-to-right pass over `template`: each placeholder handed to `placeholder`, the runs between them to
    /// `literal`.
    private static func scan(_ template: String, literal: (String) -> Void, placeholder: (Placeholder) -> Void) {
        let utf8 = template.utf8
        var runStart = utf8.startIndex
        var i = runStart
        while i < utf8.endIndex {
            if utf8[i] == UInt8(ascii: "{"),
               let found = Placeholder.allCases.first(where: { utf8[i...].starts(with: $0.token.utf8) }) {
                literal(String(template[runStart..<i]))
                placeholder(found)
                i = utf8.index(i, offsetBy: found.token.utf8.count)
                runStart = i
            } else {
                i = utf8.index(after: i)
            }
        }
        literal(String(template[runStart..<i]))
    }
}
