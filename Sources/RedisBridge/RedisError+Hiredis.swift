import CHiredis
import Foundation
import Glibc

/// The one place where hiredis error codes and Redis error replies become `RedisError` values.
extension RedisError {
    /// The error a failed hiredis call left in `context`; `errno` is read by the caller right after the call.
    static func fromContext(
        _ context: UnsafeMutablePointer<redisContext>, errno savedErrno: Int32, endpoint: String, redacting secret: String?
    ) -> RedisError {
        let code = cs_redis_err(context)
        let text = redact(String(cString: cs_redis_errstr(context)), secret)
        let kind: Kind
        switch code {
        case REDIS_ERR_IO:
            switch savedErrno {
            case ECONNREFUSED: kind = .connectionRefused
            case EAGAIN, EWOULDBLOCK, ETIMEDOUT, EINPROGRESS: kind = .timeout
            default:
                if text.localizedCaseInsensitiveContains("refused") {
                    kind = .connectionRefused
                } else if text.localizedCaseInsensitiveContains("timed out")
                    || text.localizedCaseInsensitiveContains("temporarily unavailable") {
                    kind = .timeout
                } else {
                    kind = .io
                }
            }
        case REDIS_ERR_EOF: kind = .eof
        case REDIS_ERR_PROTOCOL: kind = .protocolViolation
        default: kind = .other
        }
        let message = text.isEmpty ? "hiredis error \(code)" : text
        return RedisError(kind: kind, endpoint: endpoint, message: message)
    }

    /// The error for an error reply to a single command; credentials problems become `.authentication`.
    static func fromReply(_ text: String, endpoint: String, redacting secret: String?) -> RedisError {
        let message = redact(text, secret)
        let word = message.split(separator: " ", maxSplits: 1).first.map(String.init) ?? ""
        let isAuth = ["WRONGPASS", "NOAUTH"].contains(word)
            || message.hasPrefix("ERR invalid password")
            || message.hasPrefix("ERR AUTH <password> called without any password configured")
            || message.hasPrefix("ERR Client sent AUTH, but no password is set")
        if word == "READONLY" { return RedisError(kind: .notMaster, endpoint: endpoint, message: message) }
        if word == "MOVED" || word == "ASK" {
            return RedisError(kind: .server, endpoint: endpoint, message: message
                              + " (the server is a Redis Cluster node: keys must be routed by slot, in cluster mode)")
        }
        return RedisError(kind: isAuth ? .authentication : .server, endpoint: endpoint, message: message)
    }

    /// The error for a failure that is not hiredis's, such as an empty command.
    static func invalidCommand(_ message: String, endpoint: String) -> RedisError {
        RedisError(kind: .invalidCommand, endpoint: endpoint, message: message)
    }

    /// `text` with every occurrence of `secret` replaced, so no message carries a password.
    private static func redact(_ text: String, _ secret: String?) -> String {
        guard let secret, !secret.isEmpty else { return text }
        return text.replacingOccurrences(of: secret, with: "***")
    }
}
