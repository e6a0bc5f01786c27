import BSONModel
import Yams

/// `project` and `filter` of a collection (docs/ARCHITECTURE.md §3).
extension ConfigDecoder {
    /// `project: { a: 0, "b.c": 0 }` or `{ a: 1, b: 1 }`; `_id` is always kept.
    func projection(_ node: ConfigNode) throws(ConfigError) -> Projection {
        let entries = try node.entries(what: "a map of field paths to 0 or 1 (MongoDB projection syntax)")
        guard !entries.isEmpty else { throw node.error("needs at least one field (e.g. { passwordHash: 0 })") }
        var including: Bool?
        var paths: [[String]] = []
        for (key, value) in entries {
            let include = try projectionFlag(value)
            if key == "_id" {
                guard include else {
                    throw value.error("""
                        cannot leave _id out: the read-through API and verify know a cached document by its _id
                        """)
                }
                continue
            }
            let path = try fieldPath(key, value)
            if let including, including != include {
                throw value.error("""
                    mixes inclusion (1) and exclusion (0); a projection is one or the other
                    """)
            }
            including = include
            paths.append(path)
        }
        guard let including else { throw node.error("keeps every field: list the fields to keep (1) or to remove (0)") }
        return Projection(including: including, paths: paths)
    }

    /// `0`/`1` (or `false`/`true`) in a projection.
    private func projectionFlag(_ node: ConfigNode) throws(ConfigError) -> Bool {
        if case let .scalar(scalar) = node.node, scalar.style == .plain || scalar.style == .any {
            switch scalar.string.lowercased() {
            case "1", "true": return true
            case "0", "false": return false
            default: break
            }
        }
        throw node.error("expected 0 (leave the field out) or 1 (keep it), found \(node.describe())")
    }

    /// A dotted field path: non-empty parts, not starting with `$`.
    private func fieldPath(_ key: String, _ node: ConfigNode) throws(ConfigError) -> [String] {
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !key.hasPrefix("$"), !parts.contains(where: \.isEmpty) else {
            throw ConfigError(file: file, line: node.keyLine, field: node.field,
                              message: "\"\(key)\" is not a field path (names joined by dots, e.g. address.city)")
        }
        return parts
    }

    /// `filter: { status: active, age: { $gte: 18 }, $or: [ … ] }`.
    func documentFilter(_ node: ConfigNode) throws(ConfigError) -> DocumentFilter {
        let entries = try node.entries(what: "a map of field paths to values or conditions")
        guard !entries.isEmpty else { throw node.error("needs at least one condition") }
        var parts: [DocumentFilter] = []
        for (key, value) in entries {
            switch key {
            case "$and", "$or":
                let items = try value.sequence(what: "a list of filters")
                guard !items.isEmpty else { throw value.error("needs at least one filter") }
                var filters: [DocumentFilter] = []
                for item in items { filters.append(try documentFilter(item)) }
                parts.append(key == "$and" ? .and(filters) : .or(filters))
            case let name where name.hasPrefix("$"):
                throw unsupported(name, value)
            default:
                let path = try fieldPath(key, value)
                parts.append(.field(path, try conditions(value)))
            }
        }
        return parts.count == 1 ? parts[0] : .and(parts)
    }

    /// The conditions on one field: a map of operators, or a value it must equal.
    private func conditions(_ node: ConfigNode) throws(ConfigError) -> [DocumentFilter.Condition] {
        guard case .mapping = node.node, let entries = try? node.entries(),
              let first = entries.first, first.key.hasPrefix("$") else {
            return [.eq(try filterValue(node))]
        }
        var conditions: [DocumentFilter.Condition] = []
        for (name, value) in entries {
            switch name {
            case "$eq": conditions.append(.eq(try filterValue(value)))
            case "$ne": conditions.append(.ne(try filterValue(value)))
            case "$in", "$nin":
                var values: [BSONValue] = []
                for item in try value.sequence(what: "a list of values") { values.append(try filterValue(item)) }
                conditions.append(name == "$in" ? .isIn(values) : .notIn(values))
            case "$exists": conditions.append(.exists(try value.bool()))
            case "$gt": conditions.append(.gt(try filterValue(value)))
            case "$gte": conditions.append(.gte(try filterValue(value)))
            case "$lt": conditions.append(.lt(try filterValue(value)))
            case "$lte": conditions.append(.lte(try filterValue(value)))
            case let other where other.hasPrefix("$"): throw unsupported(other, value)
            default:
                throw value.error("mixes operators and field names in one condition (write { $eq: { … } } to match a document)")
            }
        }
        return conditions
    }

    private func unsupported(_ name: String, _ node: ConfigNode) -> ConfigError {
        ConfigError(file: file, line: node.keyLine, field: node.field, message: """
            unsupported operator "\(name)" (a filter may use \(DocumentFilter.operators.joined(separator: ", ")))
            """)
    }

    /// A YAML value as BSON: whole numbers, decimals, true/false and null unquoted; any other scalar a string; lists
    /// and maps as arrays and documents.
    private func filterValue(_ node: ConfigNode) throws(ConfigError) -> BSONValue {
        switch node.node {
        case .scalar(let scalar):
            let text = scalar.string
            guard scalar.style == .plain || scalar.style == .any else { return .string(text) }
            if ["", "~", "null", "Null", "NULL"].contains(text) { return .null }
            if ["true", "True", "TRUE"].contains(text) { return .bool(true) }
            if ["false", "False", "FALSE"].contains(text) { return .bool(false) }
            if let n = Int64(text) { return Int32(exactly: n).map(BSONValue.int32) ?? .int64(n) }
            if text.contains("."), let d = Double(text), d.isFinite { return .double(d) }
            return .string(text)
        case .sequence:
            var values: [BSONValue] = []
            for item in try node.sequence() { values.append(try filterValue(item)) }
            return .array(values)
        case .mapping:
            var fields: [(key: String, value: BSONValue)] = []
            for (key, value) in try node.entries() { fields.append((key, try filterValue(value))) }
            return .document(BSONDocument(fields))
        case .alias:
            throw node.error("expected a value, found an alias")
        }
    }
}

/// `indexes` of a collection (docs/ARCHITECTURE.md §3).
extension ConfigDecoder {
    /// `indexes: [ { key: "user:email:{email}", value: key } ]`, checked against the collection's other settings:
    /// not with `strategy: invalidate` (no full document), no template whose keys the collection's own keys could
    /// be confused with.
    func secondaryIndexes(_ node: ConfigNode, collection config: CollectionConfig, keyPrefix: String) throws(ConfigError) -> [SecondaryIndex] {
        guard config.strategy != .invalidate else {
            throw node.error("""
                needs the full document, which strategy: invalidate never reads (a change only deletes the key): \
                use strategy: update or preserve-ttl
                """)
        }
        let items = try node.sequence(what: "a list of secondary keys ({ key: \"user:email:{email}\", value: key })")
        guard !items.isEmpty else { throw node.error("needs at least one secondary key (or leave indexes out)") }
        var indexes: [SecondaryIndex] = []
        for item in items {
            let map = try item.mapping(allowed: ["key", "value"], what: "a secondary key ({ key: …, value: key | document })")
            let keyNode = try map.required("key", "missing (a key template with field placeholders, e.g. \"user:email:{email}\")")
            let template = try keyNode.string()
            let parts: [SecondaryIndex.Part]
            switch SecondaryIndex.parse(template) {
            case .success(let parsed): parts = parsed
            case .failure(let problem): throw keyNode.error("\"\(template)\" \(problem)")
            }
            let value = try map["value"]?.choice(SecondaryIndex.Value.self, what: "value") ?? .key
            let index = SecondaryIndex(template: template, value: value, parts: parts)
            if index.mayOverlapKeys(of: config, keyPrefix: keyPrefix) {
                throw keyNode.error("""
                    "\(template)" may give keys that the collection's own keys (\(config.keyTemplate)) also match, \
                    so verify and flushes could not tell them apart: start it differently (e.g. "user:email:{email}" \
                    beside "users:{id}")
                    """)
            }
            guard !indexes.contains(where: { $0.template == template }) else {
                throw keyNode.error("\"\(template)\" is listed twice")
            }
            indexes.append(index)
        }
        return indexes
    }
}
