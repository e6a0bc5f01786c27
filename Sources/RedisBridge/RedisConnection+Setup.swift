import CHiredis
import Foundation
import Glibc

/// Connecting: the socket with its timeouts, the TLS handshake when configured, then AUTH and SELECT. Call with the
/// lock held.
extension RedisConnection {
    /// A freshly connected context with the command timeout applied, and its TLS session when the options ask for
    /// TLS (handshake done, certificate checked); not yet authenticated. Nothing is sent in plaintext before TLS.
    func openContext() throws(RedisError) -> (UnsafeMutablePointer<redisContext>, RedisTLSSession?) {
        guard let fresh = redisConnectWithTimeout(options.host, Int32(clamping: options.port), Self.timeval(for: options.connectTimeout))
        else {
            throw RedisError(kind: .other, endpoint: options.endpoint, message: "cannot allocate a hiredis context")
        }
        if cs_redis_err(fresh) != 0 {
            let error = RedisError.fromContext(fresh, errno: cs_errno(), endpoint: options.endpoint, redacting: secret)
            redisFree(fresh)
            throw error
        }
        do {
            var session: RedisTLSSession?
            if let tls = options.tls {
                // The handshake is part of connecting: it gets the connect timeout.
                try setTimeout(fresh, options.connectTimeout)
                session = try RedisTLSSession(socket: fresh.pointee.fd, host: options.host, options: tls,
                                              endpoint: options.endpoint)
            }
            try setTimeout(fresh, options.commandTimeout)
            return (fresh, session)
        } catch {
            redisFree(fresh)
            throw error
        }
    }

    /// Sets how long one read or write on the socket may block (`nil`: without limit).
    private func setTimeout(_ context: UnsafeMutablePointer<redisContext>, _ duration: Duration?) throws(RedisError) {
        let timeout = duration.map { Self.timeval(for: $0) } ?? Glibc.timeval(tv_sec: 0, tv_usec: 0)
        if redisSetTimeout(context, timeout) != REDIS_OK {
            throw RedisError.fromContext(context, errno: cs_errno(), endpoint: options.endpoint, redacting: secret)
        }
    }

    /// Sends AUTH and SELECT as the options ask; any error reply to AUTH is an authentication failure. The
    /// password comes from `passwordFile` when set, read now (so a rotated secret is used at the next reconnect).
    func handshake(_ fresh: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        if let file = options.passwordFile {
            filePassword = try Self.readPassword(file, endpoint: options.endpoint)
        }
        if let password = secret {
            let auth = ["AUTH"] + (options.user.map { [$0] } ?? []) + [password]
            if case .error(let text) = try roundTrip(fresh, [auth.map { Array($0.utf8) }], dropOnFailure: false)[0] {
                let mapped = RedisError.fromReply(text, endpoint: options.endpoint, redacting: password)
                throw RedisError(kind: .authentication, endpoint: options.endpoint, message: mapped.message)
            }
        }
        if options.db != 0 {
            let select = [Array("SELECT".utf8), Array(String(options.db).utf8)]
            if case .error(let text) = try roundTrip(fresh, [select], dropOnFailure: false)[0] {
                throw RedisError.fromReply(text, endpoint: options.endpoint, redacting: secret)
            }
        }
    }

    /// The password in `file`: its first line, without the line break (Kubernetes Secrets often end with none,
    /// files written by hand with one).
    static func readPassword(_ file: String, endpoint: String) throws(RedisError) -> String {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw RedisError(kind: .authentication, endpoint: endpoint,
                             message: "cannot read the password file \(file) (missing or not readable)")
        }
        let text = String(decoding: data, as: UTF8.self)
        return String(text.prefix { $0 != "\n" && $0 != "\r\n" && $0 != "\r" })
    }

    /// A `timeval` for a duration, rounded down to microseconds.
    static func timeval(for duration: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
