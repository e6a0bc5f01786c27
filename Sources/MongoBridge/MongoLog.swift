import CMongoc
import Foundation

/// Routes libmongoc's own log lines (which it would print to stderr in its own format) to a Swift handler.
public enum MongoLog {
    /// libmongoc's level of a line.
    public enum Level: Sendable {
        case error, critical, warning, message, info, debug, trace
    }

    /// Receives one libmongoc log line: its level, domain (e.g. `stream`, `client`) and message.
    public typealias Handler = @Sendable (Level, String, String) -> Void

    private static let lock = NSLock()
    nonisolated(unsafe) private static var handler: Handler?

    /// Sends every libmongoc log line to `handler` from now on (process-wide).
    public static func setHandler(_ newHandler: @escaping Handler) {
        lock.withLock { handler = newHandler }
        mongoc_log_set_handler({ level, domain, message, _ in
            let text = message.map { String(cString: $0) } ?? ""
            let area = domain.map { String(cString: $0) } ?? ""
            let mapped: MongoLog.Level = switch level {
            case MONGOC_LOG_LEVEL_ERROR: .error
            case MONGOC_LOG_LEVEL_CRITICAL: .critical
            case MONGOC_LOG_LEVEL_WARNING: .warning
            case MONGOC_LOG_LEVEL_MESSAGE: .message
            case MONGOC_LOG_LEVEL_INFO: .info
            case MONGOC_LOG_LEVEL_DEBUG: .debug
            default: .trace
            }
            MongoLog.lock.withLock { MongoLog.handler }?(mapped, area, text)
        }, nil)
        // After the handler: mongoc_init itself may log (e.g. "Falling back to malloc for counters").
        MongoRuntime.ensureInitialised()
    }
}
