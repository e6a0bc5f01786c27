import BSONModel
import Foundation

/// Renders the effective config as YAML for `check-config`, and redacts secrets in connection strings.
public enum ConfigRenderer {
    /// The effective config as YAML: every default filled in, collections as `<db>.<coll>` (or, when
    /// `mongodb.database` is set, by their name with a `database` field), and with
    /// `redactSecrets` passwords in both URIs replaced by `***`. The text parses back to the same config.
    public static func render(_ config: CacheSyncConfig, redactSecrets: Bool = true) -> String {
        let uri = redactSecrets ? redactedURI(config.mongodb.uri) : config.mongodb.uri
        let url = redactSecrets ? redactedURI(config.redis.url) : config.redis.url
        var lines = ["# effective configuration from \(config.sourcePath)" + (redactSecrets ? " (secrets redacted)" : "")]
        lines.append("mongodb:")
        lines.append("  uri: \(quoted(uri))")
        if !config.mongodb.database.isEmpty {
            lines.append("  database: \(quoted(config.mongodb.database))")
        }
        lines.append("redis:")
        lines.append("  url: \(quoted(url))")
        lines.append("  keyPrefix: \(quoted(config.redis.keyPrefix))")
        if let passwordFile = config.redis.passwordFile {
            lines.append("  passwordFile: \(quoted(passwordFile))")
        }
        if let tls = config.redis.tls {
            lines.append("  tls:")
            for (name, value) in [("caFile", tls.caFile), ("certFile", tls.certFile), ("keyFile", tls.keyFile),
                                  ("serverName", tls.serverName)] {
                if let value { lines.append("    \(name): \(quoted(value))") }
            }
            lines.append("    insecureSkipVerify: \(tls.insecureSkipVerify)")
        }
        if let sentinel = config.redis.sentinel {
            lines.append("  sentinel:")
            lines.append("    masterName: \(quoted(sentinel.masterName))")
            let nodes = sentinel.nodes.map { quoted($0.description) }
            lines.append("    nodes: [\(nodes.joined(separator: ", "))]")
            if let username = sentinel.username { lines.append("    username: \(quoted(username))") }
            if sentinel.password != nil {
                lines.append("    password: \(quoted(redactSecrets ? "***" : sentinel.password ?? ""))")
            }
        }
        if let cluster = config.redis.cluster {
            lines.append("  cluster:")
            lines.append("    nodes: [\(cluster.nodes.map { quoted($0.description) }.joined(separator: ", "))]")
        }
        lines.append("http:")
        lines.append("  listen: \(quoted(config.http.listen))")
        lines.append("  silenceWarning: \(number(config.http.silenceWarningSeconds))")
        if config.http.apiAddress != nil || config.http.apiTokenFile != nil {
            lines.append("  api:")
            if let address = config.http.apiAddress { lines.append("    listen: \(quoted(address.description))") }
            if let file = config.http.apiTokenFile { lines.append("    tokenFile: \(quoted(file))") }
        }
        lines.append("checkpoint:")
        lines.append("  keyPrefix: \(quoted(config.checkpoint.keyPrefix))")
        lines.append("lease:")
        lines.append("  enabled: \(config.lease.enabled)")
        lines.append("  ttl: \(number(config.lease.ttlSeconds))")
        if let instanceId = config.lease.instanceId {
            lines.append("  instanceId: \(quoted(instanceId))")
        }
        lines.append("shutdownTimeout: \(number(config.shutdownTimeout))")
        lines.append("readyAfterWarmup: \(config.readyAfterWarmup)")
        lines.append("collections:")
        for collection in config.collections {
            // With mongodb.database set a dotted key would be ambiguous: the key is the name, `database` says where.
            if config.mongodb.database.isEmpty {
                lines.append("  \(quoted(collection.namespace)):")
            } else {
                lines.append("  \(quoted(collection.collection)):")
                lines.append("    database: \(quoted(collection.database))")
            }
            lines.append("    strategy: \(collection.strategy.rawValue)")
            let operations = DocumentOperation.allCases.filter { collection.operations.contains($0) }
            lines.append("    operations: [\(operations.map(\.rawValue).joined(separator: ", "))]")
            lines.append("    ttl:")
            lines.append("      base: \(collection.ttl.base)")
            if collection.ttl.tiers.isEmpty {
                lines.append("      tiers: []")
            } else {
                lines.append("      tiers:")
                for tier in collection.ttl.tiers {
                    lines.append("        - { minAccesses: \(tier.minAccesses), ttl: \(tier.ttl) }")
                }
            }
            lines.append("    keyTemplate: \(quoted(collection.keyTemplate))")
            lines.append("    idType: \(collection.idType.rawValue)")
            lines.append("    onHistoryLost: \(collection.onHistoryLost.rawValue)")
            lines.append("    maxValueBytes: \(collection.maxValueBytes)")
            lines.append("    notFoundTtl: \(collection.notFoundTTL)")
            lines.append("    accessCounts:")
            lines.append("      window: \(collection.accessWindow)")
            if let projection = collection.projection {
                lines.append("    project: \(ExtendedJSON.relaxed(BSONValue.document(projection.document)))")
            }
            if let filter = collection.filter {
                lines.append("    filter: \(ExtendedJSON.relaxed(BSONValue.document(filter.document)))")
            }
            lines.append("    format: \(collection.format.rawValue)")
            if !collection.indexes.isEmpty {
                lines.append("    indexes:")
                for index in collection.indexes {
                    lines.append("      - key: \(quoted(index.template))")
                    lines.append("        value: \(index.value.rawValue)")
                }
                lines.append("    preImages: \(collection.preImages)")
            }
            if collection.warmup.enabled {
                let warmup = collection.warmup
                let limit = warmup.limit.map { "limit: \($0), " } ?? ""
                let sort = warmup.sort.isEmpty ? "" : "sort: { " + warmup.sort.map { key in
                    let plain = key.path.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }
                    return "\(plain ? key.path : quoted(key.path)): \(key.direction)"
                }.joined(separator: ", ") + " }, "
                lines.append("    warmup: { \(limit)\(sort)chunkSize: \(warmup.chunkSize), share: \(number(warmup.share)) }")
            } else {
                lines.append("    warmup: none")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `uri` with the password of its user info (and any `password`, `secret` or `token` query value)
    /// replaced by `***`; safe for logs. Works for mongodb://, mongodb+srv://, redis:// and similar URIs, and
    /// also redacts `user:password@` in text that is not a well-formed URI. The user info ends at the last `@` (a
    /// password written without percent-encoding may hold `/` or `@`); when that span holds `?` or `#`, it is
    /// unclear whether the password holds them or a query holds the `@`, and everything after the user name is
    /// hidden.
    public static func redactedURI(_ uri: String) -> String {
        let schemeEnd = uri.range(of: "://")?.upperBound ?? uri.startIndex
        var result = String(uri[..<schemeEnd])
        var rest = uri[schemeEnd...]
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            if userInfo.contains(where: { $0 == "?" || $0 == "#" }) {
                let user = userInfo.prefix { $0 != ":" && $0 != "/" && $0 != "?" && $0 != "#" }
                return result + user + ":***"
            }
            if let colon = userInfo.firstIndex(of: ":") {
                result += userInfo[..<colon] + ":***"
            } else {
                result += userInfo
            }
            rest = rest[at...]
        }
        var query: Substring?
        if let question = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        result += rest
        if let query {
            let secretWords = ["password", "secret", "token"]
            let parameters = query.split(separator: "&", omittingEmptySubsequences: false).map { parameter -> String in
                guard let equals = parameter.firstIndex(of: "=") else {
                    return String(parameter)
                }
                let name = parameter[..<equals].lowercased()
                return secretWords.contains(where: name.contains) ? parameter[...equals] + "***" : String(parameter)
            }
            result += "?" + parameters.joined(separator: "&")
        }
        return result
    }

    /// A double-quoted YAML string with `\`, `"` and control characters escaped.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    result += String(format: "\\x%02X", scalar.value)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }

    /// Seconds without a needless `.0`: `10`, `2.5`.
    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 {
            return String(Int(value))
        }
        return String(value)
    }
}
