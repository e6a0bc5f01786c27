import Foundation
import Yams

/// Reads, interpolates, parses and validates a cachesync YAML config (docs/ARCHITECTURE.md §3).
public enum ConfigLoader {
    /// The file `--config` falls back to when neither the flag nor `CACHESYNC_CONFIG` is given.
    public static let defaultPath = "./cachesync.yaml"

    /// Reads the file at `path` and parses it; this is the one place in the core that touches the file system.
    public static func load(path: String,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError)
    -> CacheSyncConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError(file: path, line: nil, message: "cannot read the config file (\(error.localizedDescription))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, message: "the config file is not UTF-8 text")
        }
        return try parse(text: text, path: path, environment: environment)
    }

    /// Parses config text; `path` only names the file in messages and in `sourcePath`.
    public static func parse(text: String, path: String = "cachesync.yaml",
                             environment: [String: String] = [:]) throws(ConfigError) -> CacheSyncConfig {
        let expanded: String
        do {
            expanded = try EnvironmentInterpolation.interpolate(text, environment: environment, file: path)
        } catch {
            throw naming(error, in: text)
        }
        let root = try compose(expanded, file: path)
        return try ConfigDecoder(file: path).decode(root)
    }

    /// An interpolation error with the field path of the value that holds the variable, found in the YAML tree of
    /// the text before interpolation (`${…}` is a plain scalar there); unchanged when it cannot be found.
    private static func naming(_ error: ConfigError, in text: String) -> ConfigError {
        guard error.field.isEmpty, let line = error.line, let root = try? Yams.compose(yaml: text) else { return error }
        func search(_ node: Node, _ path: [String]) -> [String]? {
            switch node {
            case .scalar(let scalar):
                return scalar.string.contains("${") && node.mark?.line == line ? path : nil
            case .mapping(let mapping):
                for (key, value) in mapping {
                    if let found = search(value, path + [key.string ?? "?"]) { return found }
                }
            case .sequence(let sequence):
                for (index, value) in sequence.enumerated() {
                    if let found = search(value, path + ["[\(index)]"]) { return found }
                }
            default:
                return nil
            }
            return nil
        }
        guard let path = search(root, []) else { return error }
        return ConfigError(file: error.file, line: line, field: ConfigNode.join(path), message: error.message)
    }

    /// The YAML tree of `text`, with syntax errors turned into `file:line: invalid YAML: ...`.
    private static func compose(_ text: String, file: String) throws(ConfigError) -> Node {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text, .default, .default, .utf8)
        } catch let error as YamlError {
            throw syntaxError(error, text: text, file: file)
        } catch {
            throw ConfigError(file: file, line: nil, message: "invalid YAML: \(error)")
        }
        guard let root else {
            throw ConfigError(file: file, line: 1, message: "the file is empty (expected a map with mongodb, redis and collections)")
        }
        return root
    }

    /// A `ConfigError` for a Yams parse error, at the line the parser stopped.
    private static func syntaxError(_ error: YamlError, text: String, file: String) -> ConfigError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            var message = "invalid YAML: \(problem)"
            if let context {
                message += " (\(context.text) at line \(context.mark.line))"
            }
            return ConfigError(file: file, line: mark.line, message: message)
        case let .reader(problem, offset, _, _):
            let line = offset.map { text.prefix($0).filter { $0 == "\n" || $0 == "\r\n" }.count + 1 }
            return ConfigError(file: file, line: line, message: "invalid YAML: \(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            let key = duplicates.first ?? ""
            let first = context.mark.line
            let second = repeatedKeyLine(key, after: context.mark, in: text)
            let parents = blockParents(ofLine: first, column: context.mark.column, in: text)
            return ConfigError(file: file, line: second ?? first, field: parents.map { ConfigNode.join($0 + [key]) } ?? "",
                               message: "duplicate key \"\(key)\"" + (second == nil ? "" : " (first at line \(first))"))
        default:
            return ConfigError(file: file, line: nil, message: "invalid YAML: \(error)")
        }
    }

    /// The keys of the block maps that hold the key at `line`/`column`, found by indentation; nil when a list or
    /// flow style is in the way and the path cannot be told from the text alone.
    private static func blockParents(ofLine line: Int, column: Int, in text: String) -> [String]? {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        guard line >= 1, line <= lines.count else {
            return nil
        }
        var indent = column - 1
        var parents: [String] = []
        var index = line - 2
        while indent > 0, index >= 0 {
            let content = lines[index]
            index -= 1
            let lineIndent = content.prefix(while: { $0 == " " }).count
            let body = content.dropFirst(lineIndent)
            guard !body.isEmpty, !body.hasPrefix("#"), lineIndent < indent else {
                continue
            }
            guard !body.hasPrefix("-"), let colon = body.firstIndex(of: ":"),
                  body[body.index(after: colon)...].drop(while: { $0 == " " }).first.map({ $0 == "#" }) ?? true else {
                return nil
            }
            parents.insert(String(body[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "\"' ")), at: 0)
            indent = lineIndent
        }
        return indent == 0 ? parents : nil
    }

    /// The line after `mark` where `key:` starts at the same column, if any (the second of two duplicate keys).
    private static func repeatedKeyLine(_ key: String, after mark: Mark, in text: String) -> Int? {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        guard mark.line >= 1, mark.line < lines.count else {
            return nil
        }
        for index in mark.line..<lines.count {
            let line = lines[index]
            guard line.count >= mark.column - 1 else {
                continue
            }
            let rest = line.dropFirst(mark.column - 1)
            for spelling in [key, "\"\(key)\"", "'\(key)'"] where rest.hasPrefix(spelling) {
                if rest.dropFirst(spelling.count).drop(while: { $0 == " " }).hasPrefix(":") {
                    return index + 1
                }
            }
        }
        return nil
    }
}
