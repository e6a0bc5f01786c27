import Yams

/// A YAML node with the dotted path and line it came from, and typed readers that fail with a `ConfigError`.
struct ConfigNode {
    /// The YAML node.
    let node: Node
    /// Field names from the root to this node.
    let path: [String]
    /// The config file name, for messages.
    let file: String
    /// The line of the key that holds this node (nil for the root).
    let keyLine: Int?

    /// The dotted field path, e.g. `collections.products.ttl.tiers[1]`.
    var field: String { Self.join(path) }

    /// The line to report for this node: the value's own line for a scalar, else its key's line.
    var line: Int? {
        if case .scalar = node, let mark = node.mark {
            return mark.line
        }
        return keyLine ?? node.mark?.line
    }

    /// An error about this node.
    func error(_ message: String) -> ConfigError {
        ConfigError(file: file, line: line, field: field, message: message)
    }

    /// The child node at `key`, for errors about a field that is missing here.
    func missing(_ key: String, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line, field: Self.join(path + [key]), message: message)
    }

    /// This node as a map whose keys must all be in `allowed` (or start with `extensionPrefix`, and are then
    /// ignored); an unknown key is an error with a suggestion.
    func mapping(allowed: [String], what: String = "a map",
                 extensionPrefix: String? = nil) throws(ConfigError) -> ConfigMapping {
        var entries = try entries(what: what)
        if let extensionPrefix {
            entries.removeAll(where: { $0.key.hasPrefix(extensionPrefix) })
        }
        for entry in entries where !allowed.contains(entry.key) {
            var message = "unknown key \"\(entry.key)\""
            if let suggestion = ConfigSuggestion.closest(to: entry.key, among: allowed) {
                message += " (did you mean \"\(suggestion)\"?)"
            } else {
                message += " (expected one of \(allowed.joined(separator: ", ")))"
            }
            throw ConfigError(file: file, line: entry.value.keyLine, field: entry.value.field, message: message)
        }
        return ConfigMapping(owner: self, entries: entries)
    }

    /// This node as a map with free-form string keys, in file order; YAML merge keys (`<<: *anchor`) are
    /// applied, keys written in the map itself winning over merged ones.
    func entries(what: String = "a map") throws(ConfigError) -> [(key: String, value: ConfigNode)] {
        guard case let .mapping(mapping) = node else {
            throw error("expected \(what), found \(describe())")
        }
        var result: [(key: String, value: ConfigNode)] = []
        var merged: [(key: String, value: ConfigNode)] = []
        for (keyNode, valueNode) in mapping {
            guard case let .scalar(scalar) = keyNode else {
                throw ConfigError(file: file, line: keyNode.mark?.line ?? line, field: field,
                                  message: "a key must be a plain name, found \(ConfigNode(node: keyNode, path: path, file: file, keyLine: nil).describe())")
            }
            let child = ConfigNode(node: valueNode, path: path + [scalar.string], file: file,
                                   keyLine: keyNode.mark?.line)
            if scalar.string == "<<", scalar.style == .plain || scalar.style == .any {
                merged += try child.mergeSources()
            } else {
                result.append((scalar.string, child))
            }
        }
        for entry in merged where !result.contains(where: { $0.key == entry.key }) {
            result.append(entry)
        }
        return result
    }

    /// The entries a merge key (`<<`) brings in: from one map, or from a list of maps (earlier maps win).
    private func mergeSources() throws(ConfigError) -> [(key: String, value: ConfigNode)] {
        let parent = Array(path.dropLast())
        let sources: [Node]
        switch node {
        case .mapping: sources = [node]
        case let .sequence(sequence): sources = Array(sequence)
        default: throw error("a merge key (<<) needs a map or a list of maps, found \(describe())")
        }
        var result: [(key: String, value: ConfigNode)] = []
        for source in sources {
            let entries = try ConfigNode(node: source, path: parent, file: file, keyLine: keyLine)
                .entries(what: "a map to merge (<<)")
            for entry in entries where !result.contains(where: { $0.key == entry.key }) {
                result.append(entry)
            }
        }
        return result
    }

    /// This node as a list.
    func sequence(what: String = "a list") throws(ConfigError) -> [ConfigNode] {
        guard case let .sequence(sequence) = node else {
            throw error("expected \(what), found \(describe())")
        }
        return sequence.enumerated().map { index, element in
            ConfigNode(node: element, path: path + ["[\(index)]"], file: file, keyLine: element.mark?.line)
        }
    }

    /// This node as a string; a null (empty) value is an error.
    func string() throws(ConfigError) -> String {
        guard case let .scalar(scalar) = node else {
            throw error("expected a string, found \(describe())")
        }
        if isNull(scalar) {
            throw error("expected a string, found nothing (write \"\" for an empty string)")
        }
        return scalar.string
    }

    /// This node as a whole number written without quotes.
    func int() throws(ConfigError) -> Int {
        guard case let .scalar(scalar) = node, Self.isInteger(scalar.string), let value = Int(scalar.string) else {
            throw error("expected a whole number, found \(describe())")
        }
        guard scalar.style == .plain || scalar.style == .any else {
            throw error("expected a whole number, found the string \(describe()) (write numbers without quotes)")
        }
        return value
    }

    /// This node as a number of seconds (whole or decimal) written without quotes.
    func seconds() throws(ConfigError) -> Double {
        guard case let .scalar(scalar) = node, Self.isDecimal(scalar.string), let value = Double(scalar.string),
              value.isFinite else {
            throw error("expected a number of seconds, found \(describe())")
        }
        guard scalar.style == .plain || scalar.style == .any else {
            throw error("expected a number of seconds, found the string \(describe()) (write numbers without quotes)")
        }
        return value
    }

    /// This node as `true` or `false` (also `yes`/`no`, `on`/`off`).
    func bool() throws(ConfigError) -> Bool {
        if case let .scalar(scalar) = node, scalar.style == .plain || scalar.style == .any {
            switch scalar.string.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: break
            }
        }
        throw error("expected true or false, found \(describe())")
    }

    /// This node as one of the raw values of `E`, e.g. `unknown strategy "updat" (expected a, b, c)`.
    func choice<E: RawRepresentable & CaseIterable>(_ type: E.Type, what: String) throws(ConfigError) -> E
    where E.RawValue == String {
        let expected = E.allCases.map(\.rawValue).joined(separator: ", ")
        guard case let .scalar(scalar) = node, !isNull(scalar) else {
            throw error("expected \(what) (one of \(expected)), found \(describe())")
        }
        guard let value = E(rawValue: scalar.string) else {
            throw error("unknown \(what) \"\(scalar.string)\" (expected \(expected))")
        }
        return value
    }

    /// A short description of the node for messages: `a list`, `a map`, `"abc"`, `nothing`.
    func describe() -> String {
        switch node {
        case .mapping: return "a map"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case let .scalar(scalar):
            if isNull(scalar) {
                return "nothing"
            }
            // A value in the wrong place may be a secret pasted there: only short plain words are repeated
            // ("lots", "5m", "maybe"); anything with capitals, symbols or length is described, not shown.
            let text = scalar.string
            let plain = text.count <= 16 && !Self.secretFields.contains(path.last ?? "")
                && text.allSatisfy { ($0.isLetter && $0.isLowercase) || $0.isNumber || "._-".contains($0) }
            return plain ? "\"\(text)\"" : "a text of \(text.count) characters (not repeated: it may be a secret)"
        }
    }

    /// Fields that hold secrets or URLs with credentials: their values are never repeated in an error.
    static let secretFields: Set<String> = ["password", "url", "uri", "username"]

    /// Joins field names with dots, list indexes (`[1]`) without.
    static func join(_ path: [String]) -> String {
        var text = ""
        for part in path {
            if !text.isEmpty, !part.hasPrefix("[") {
                text += "."
            }
            text += part
        }
        return text
    }

    /// Whether the scalar is YAML null: empty, `~` or `null` without quotes.
    private func isNull(_ scalar: Node.Scalar) -> Bool {
        guard scalar.style == .plain || scalar.style == .any else {
            return false
        }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// Whether `text` is an optionally signed run of decimal digits.
    private static func isInteger(_ text: String) -> Bool {
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? Substring(text.dropFirst()) : Substring(text)
        return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Whether `text` is an optionally signed decimal number such as `10`, `2.5` or `.5`.
    private static func isDecimal(_ text: String) -> Bool {
        let body = text.hasPrefix("-") || text.hasPrefix("+") ? Substring(text.dropFirst()) : Substring(text)
        let parts = body.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard !body.isEmpty, body != ".", parts.count <= 2 else {
            return false
        }
        return parts.allSatisfy { $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }
}
