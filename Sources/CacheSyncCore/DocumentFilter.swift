import BSONModel

/// A collection's `filter`: the MongoDB query subset of docs/ARCHITECTURE.md §3 — equality, `$in`, `$nin`, `$ne`,
/// `$exists`, `$gt`, `$gte`, `$lt`, `$lte` on dotted paths, combined with `$and` and `$or` — evaluated on the full
/// document. Only matching documents are cached.
public indirect enum DocumentFilter: Sendable, Equatable {
    /// Every filter matches.
    case and([DocumentFilter])
    /// At least one filter matches.
    case or([DocumentFilter])
    /// The value at a dotted path meets every condition.
    case field([String], [Condition])

    /// One condition on a field's value.
    public enum Condition: Sendable, Equatable {
        case eq(BSONValue), ne(BSONValue)
        case isIn([BSONValue]), notIn([BSONValue])
        case exists(Bool)
        case gt(BSONValue), gte(BSONValue), lt(BSONValue), lte(BSONValue)
    }

    /// The operators a filter may use.
    public static let operators = ["$eq", "$ne", "$in", "$nin", "$exists", "$gt", "$gte", "$lt", "$lte", "$and", "$or"]

    /// The filter as a MongoDB query document (`{"status": {"$eq": "active"}}`), for `check-config`.
    public var document: BSONDocument {
        switch self {
        case .and(let filters): return ["$and": .array(filters.map { .document($0.document) })]
        case .or(let filters): return ["$or": .array(filters.map { .document($0.document) })]
        case .field(let path, let conditions):
            let operators: [(key: String, value: BSONValue)] = conditions.map { condition in
                switch condition {
                case .eq(let v): ("$eq", v)
                case .ne(let v): ("$ne", v)
                case .isIn(let vs): ("$in", .array(vs))
                case .notIn(let vs): ("$nin", .array(vs))
                case .exists(let b): ("$exists", .bool(b))
                case .gt(let v): ("$gt", v)
                case .gte(let v): ("$gte", v)
                case .lt(let v): ("$lt", v)
                case .lte(let v): ("$lte", v)
                }
            }
            return BSONDocument([(path.joined(separator: "."), .document(BSONDocument(operators)))])
        }
    }

    /// Whether `document` matches.
    public func matches(_ document: BSONDocument) -> Bool {
        matches(field: { document[$0] })
    }

    /// Whether the encoded `document` matches, decoding only the fields the filter reads (a document whose bytes
    /// are broken has none of them).
    public func matches(_ document: EncodedBSONDocument) -> Bool {
        matches(field: { document[$0] })
    }

    /// Whether the document whose top-level fields `field` looks up matches.
    private func matches(field: (String) -> BSONValue?) -> Bool {
        switch self {
        case .and(let filters): return filters.allSatisfy { $0.matches(field: field) }
        case .or(let filters): return filters.contains { $0.matches(field: field) }
        case .field(let path, let conditions):
            let values = field(path[0]).map { Self.values(at: path.dropFirst(), in: $0) } ?? []
            return conditions.allSatisfy { Self.meets($0, values) }
        }
    }

    /// The values at `path` under `value`: through embedded documents, and through the documents of arrays (a path
    /// into an array of documents reaches each). Empty when the path does not exist.
    static func values(at path: ArraySlice<String>, in value: BSONValue) -> [BSONValue] {
        guard let name = path.first else { return [value] }
        switch value {
        case .document(let document):
            guard let child = document[name] else { return [] }
            return values(at: path.dropFirst(), in: child)
        case .array(let elements):
            if let index = Int(name), index >= 0, index < elements.count {
                return values(at: path.dropFirst(), in: elements[index])
            }
            return elements.flatMap { element -> [BSONValue] in
                if case .document = element { return values(at: path, in: element) }
                return []
            }
        default:
            return []
        }
    }

    /// Whether the field's `values` meet `condition`. As in MongoDB: an array matches when it or one of its elements
    /// does; a missing field equals null; `$ne` and `$nin` match when no value equals.
    private static func meets(_ condition: Condition, _ values: [BSONValue]) -> Bool {
        let candidates = values.flatMap { value -> [BSONValue] in
            if case .array(let elements) = value { return [value] + elements }
            return [value]
        }
        func equalsAny(_ target: BSONValue) -> Bool {
            if target == .null && values.isEmpty { return true }
            return candidates.contains { equal($0, target) }
        }
        switch condition {
        case .eq(let target): return equalsAny(target)
        case .ne(let target): return !equalsAny(target)
        case .isIn(let targets): return targets.contains(where: equalsAny)
        case .notIn(let targets): return !targets.contains(where: equalsAny)
        case .exists(let wanted): return values.isEmpty != wanted
        case .gt(let target): return candidates.contains { compare($0, target).map { $0 > 0 } ?? false }
        case .gte(let target): return candidates.contains { compare($0, target).map { $0 >= 0 } ?? false }
        case .lt(let target): return candidates.contains { compare($0, target).map { $0 < 0 } ?? false }
        case .lte(let target): return candidates.contains { compare($0, target).map { $0 <= 0 } ?? false }
        }
    }

    /// Equality as MongoDB has it for these types: numbers by value across int32, int64 and double.
    static func equal(_ a: BSONValue, _ b: BSONValue) -> Bool {
        if let x = number(a), let y = number(b) { return x == y }
        return a == b
    }

    /// -1, 0 or 1 for two values of one comparable kind (numbers, strings by their UTF-8 bytes, dates, booleans);
    /// `nil` across kinds, which never match a range (MongoDB's type bracketing).
    static func compare(_ a: BSONValue, _ b: BSONValue) -> Int? {
        if let x = number(a), let y = number(b) { return x < y ? -1 : x > y ? 1 : 0 }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            return x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : x.utf8.elementsEqual(y.utf8) ? 0 : 1
        case (.datetime(let x), .datetime(let y)): return x < y ? -1 : x > y ? 1 : 0
        case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
        default: return nil
        }
    }

    private static func number(_ value: BSONValue) -> Double? {
        switch value {
        case .int32(let n): Double(n)
        case .int64(let n): Double(n)
        case .double(let n): n.isNaN ? nil : n
        default: nil
        }
    }
}
