import CHiredis
import Foundation
import Glibc

/// Connecting: the socket with its timeouts, the TLS handshake when configured, then AUTH and SELECT. Call with the
/// lock held.
extension RedisConnection {
    /// A freshly connected context with the command timeout applied, and its TLS session when the options ask for
    /// TLS (handshake done, certificate checked); not yet authenticated. Nothing is sent in plaintext before TLS.
    /// Behind Sentinel, the master is the one the sentinels name now.
    func openContext() throws(RedisError) -> (UnsafeMutablePointer<redisContext>, RedisTLSSession?) {
        let (host, port) = try options.sentinel.map { sentinel throws(RedisError) in try askSentinels(sentinel) }
            ?? (options.host, options.port)
        guard let fresh = redisConnectWithTimeout(host, Int32(clamping: port), Self.timeval(for: options.connectTimeout))
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
                session = try RedisTLSSession(socket: fresh.pointee.fd, host: host, options: tls,
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

    /// The master's address, from the first sentinel that names it (each asked on a short-lived connection of its
    /// own, with the sentinels' credentials and this connection's TLS). Throws `.io` listing every sentinel's
    /// answer when none knows the master.
    func askSentinels(_ sentinel: RedisSentinelOptions) throws(RedisError) -> (String, Int) {
        var answers: [String] = []
        for node in sentinel.nodes {
            do {
                let connection = try RedisConnection(
                    options: options.sentinelNode(node, of: sentinel, commandTimeout: options.connectTimeout))
                defer { connection.close() }
                let reply = try connection.command(["SENTINEL", "get-master-addr-by-name", sentinel.masterName])
                if let address = RedisSentinelOptions.masterAddress(in: reply) { return address }
                answers.append("\(node): does not know \(sentinel.masterName)")
            } catch {
                answers.append("\(node): \(error.message)")
            }
        }
        throw RedisError(kind: .io, endpoint: options.endpoint,
                         message: "no sentinel names the master (\(answers.joined(separator: "; ")))")
    }

    /// Behind Sentinel, that the server connected to is the master (`ROLE`): a master just demoted answers
    /// `slave`, and the next connect asks the sentinels again.
    func confirmMaster(_ fresh: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        guard options.sentinel != nil else { return }
        let role = try roundTrip(fresh, [[Array("ROLE".utf8)]], dropOnFailure: false)[0]
        let name = role.array?.first?.text ?? "\(role)"
        guard name == "master" else {
            throw RedisError(kind: .notMaster, endpoint: options.endpoint,
                             message: "the server the sentinels named is not the master (ROLE: \(name)); asking them again")
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
                let source = options.passwordFile.map { "; the password read from \($0)" } ?? ""
                throw RedisError(kind: .authentication, endpoint: options.endpoint, message: mapped.message + source)
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
