import CacheSyncCore
import Foundation
import Logging

/// How log lines look.
public enum LogFormat: String, Sendable, CaseIterable {
    /// One JSON object per line.
    case json
    /// Human-readable lines.
    case text
}

/// Writes one line per log event to stdout, a JSON object or text, with any `user:password@` in the message and
/// the metadata redacted in both formats.
public struct RedactingLogHandler: LogHandler {
    private static let lock = NSLock()

    /// The logger's label.
    public let label: String
    /// JSON or text.
    public let format: LogFormat
    /// Metadata attached to every line of this logger.
    public var metadata: Logger.Metadata = [:]
    /// The lowest level written.
    public var logLevel: Logger.Level = .info

    /// A handler for the logger `label`, writing `format`.
    public init(label: String, format: LogFormat) {
        self.label = label
        self.format = format
    }

    /// Metadata lookup by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line.
    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            // Formatted by hand: Foundation's ISO8601DateFormatter loads ICU's calendar and time-zone data, about
            // 4 MiB of resident memory in a sidecar that otherwise needs none of it.
            ("ts", ExtendedJSON.isoDate(milliseconds: Int64(Date().timeIntervalSince1970 * 1000)) ?? "?"),
            ("level", event.level.rawValue),
            ("logger", label),
            ("msg", Self.redact("\(event.message)")),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            fields.append((key, Self.redact("\(value)")))
        }
        let line = switch format {
        case .json:
            "{" + fields.map { "\(ExtendedJSON.quoted($0.0)):\(ExtendedJSON.quoted($0.1))" }.joined(separator: ",") + "}\n"
        case .text:
            // ts level logger: msg key=value ...
            "\(fields[0].1) \(fields[1].1) \(fields[2].1): \(fields[3].1)"
                + fields.dropFirst(4).map { " \($0.0)=\($0.1)" }.joined() + "\n"
        }
        Self.lock.withLock { FileHandle.standardOutput.write(Data(line.utf8)) }
    }

    /// Text with the password of any `scheme://user:password@` replaced by `***`.
    static func redact(_ text: String) -> String {
        guard text.contains("@"), text.contains("://") else { return text }
        return text.split(separator: " ", omittingEmptySubsequences: false)
            .map { $0.contains("://") && $0.contains("@") ? ConfigRenderer.redactedURI(String($0)) : String($0) }
            .joined(separator: " ")
    }
}
