import CHiredis
import COpenSSL
import Glibc

/// TLS on a connected hiredis context's socket. OpenSSL does the handshake and every read and write; hiredis still
/// lays out the commands in its output buffer and parses replies with its reader. No extra thread and no socket
/// pair: commands go from hiredis's buffer through `SSL_write`, and replies from `SSL_read` into hiredis's reader,
/// as hiredis's own `write(2)` and `read(2)` would move them. One owner per `SSL`; the context owns the socket.
final class RedisTLSSession {
    private let ssl: OpaquePointer
    private let endpoint: String
    /// Whether a client certificate was offered.
    private let offersCertificate: Bool
    /// Whether a reply came back: before one, a server that drops the connection most likely refused the handshake
    /// (TLS 1.3 servers check the client's certificate after the client thinks the handshake is done).
    private var answered = false
    /// Where `SSL_read` decrypts to before the reader takes the bytes (hiredis reads through 16 KiB the same way).
    private var buffer = [UInt8](repeating: 0, count: 16 * 1024)

    /// Runs the handshake on `socket` (connected to `host`, with the connect timeout set on it) and checks the
    /// server's certificate chain and name, unless `insecureSkipVerify`. Throws `.tls` with the reason.
    init(socket: Int32, host: String, options: RedisTLSOptions, endpoint: String) throws(RedisError) {
        self.endpoint = endpoint
        offersCertificate = options.certFile != nil
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw Self.failure("cannot create a TLS context", endpoint: endpoint)
        }
        defer { SSL_CTX_free(context) }
        _ = cs_ssl_ctx_min_tls12(context)
        // An encrypted key file must not make OpenSSL prompt on the terminal: no passphrase is given, and loading
        // it fails with a reason instead.
        SSL_CTX_set_default_passwd_cb(context) { _, _, _, _ in 0 }
        if options.insecureSkipVerify {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        } else {
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
            if let caFile = options.caFile {
                guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                    throw Self.failure("cannot read the CA file \(caFile)", endpoint: endpoint)
                }
            } else if SSL_CTX_set_default_verify_paths(context) != 1 {
                throw Self.failure("cannot load the system's CA certificates", endpoint: endpoint)
            }
        }
        if let certFile = options.certFile {
            guard SSL_CTX_use_certificate_chain_file(context, certFile) == 1 else {
                throw Self.failure("cannot read the client certificate \(certFile)", endpoint: endpoint)
            }
            let keyFile = options.keyFile ?? certFile
            guard SSL_CTX_use_PrivateKey_file(context, keyFile, SSL_FILETYPE_PEM) == 1 else {
                throw Self.failure("cannot read the client key \(keyFile) (it must be PEM and not encrypted)",
                                   endpoint: endpoint)
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw Self.failure("the client key \(keyFile) does not match the certificate \(certFile)", endpoint: endpoint)
            }
        }
        guard let ssl = SSL_new(context) else { throw Self.failure("cannot create a TLS session", endpoint: endpoint) }
        self.ssl = ssl
        cs_ssl_set_auto_retry(ssl)
        let name = options.serverName ?? host
        if Self.isIPAddress(name) {
            if !options.insecureSkipVerify { X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) }
        } else {
            _ = cs_ssl_set_sni(ssl, name)
            if !options.insecureSkipVerify { SSL_set1_host(ssl, name) }
        }
        SSL_set_fd(ssl, socket)
        let result = SSL_connect(ssl)
        guard result == 1 else {
            let verify = SSL_get_verify_result(ssl)
            if !options.insecureSkipVerify, verify != X509_V_OK {
                let reason = String(cString: X509_verify_cert_error_string(verify))
                ERR_clear_error()
                throw RedisError(kind: .tls, endpoint: endpoint, message:
                    "TLS handshake failed: the server's certificate does not verify as \(name) (\(reason)); "
                    + "check tls.caFile and tls.serverName")
            }
            throw ioFailure(result, during: "handshake")
        }
    }

    deinit {
        SSL_free(ssl)
    }

    /// Writes what hiredis has appended to `context`'s output buffer, all of it.
    func flush(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        while cs_obuf_length(context) > 0 {
            ERR_clear_error()
            let written = SSL_write(ssl, cs_obuf(context), Int32(clamping: cs_obuf_length(context)))
            guard written > 0 else { throw ioFailure(written, during: "write") }
            cs_obuf_consume(context, Int(written))
        }
    }

    /// The next reply as hiredis's reader builds it, for the caller to free: what `redisGetReply` does, over TLS
    /// (a reply already parsed first; else the output buffer written, then reads until a reply is complete).
    func nextReply(_ context: UnsafeMutablePointer<redisContext>) throws(RedisError) -> UnsafeMutableRawPointer {
        let reader = context.pointee.reader
        var reply: UnsafeMutableRawPointer?
        try take(reader, &reply)
        if let reply { return reply }
        try flush(context)
        while true {
            ERR_clear_error()
            let count = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            guard count > 0 else { throw ioFailure(count, during: "read") }
            let fed = buffer.withUnsafeBytes { bytes in
                bytes.withMemoryRebound(to: CChar.self) { redisReaderFeed(reader, $0.baseAddress, Int(count)) }
            }
            guard fed == REDIS_OK else {
                throw RedisError(kind: .other, endpoint: endpoint, message: "hiredis's reader refused the bytes read")
            }
            try take(reader, &reply)
            if let reply {
                answered = true
                return reply
            }
        }
    }

    /// A reply the reader has complete, if any.
    private func take(_ reader: UnsafeMutablePointer<redisReader>?, _ reply: inout UnsafeMutableRawPointer?)
        throws(RedisError) {
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
            let text = reader.map { String(cString: cs_reader_errstr($0)) } ?? ""
            throw RedisError(kind: .protocolViolation, endpoint: endpoint, message: text.isEmpty ? "protocol error" : text)
        }
    }

    /// The error for a failed `SSL_connect`, `SSL_read` or `SSL_write` that returned `result`; before the first
    /// reply, a dropped connection is taken for a refused handshake.
    private func ioFailure(_ result: Int32, during what: String) -> RedisError {
        let error = classify(result, during: what)
        guard !answered, error.kind == .io || error.kind == .eof else { return error }
        return RedisError(kind: .tls, endpoint: endpoint, message:
            "the server closed the TLS connection before its first answer (\(error.message))"
            + (offersCertificate ? "; does it accept this client certificate?"
                                 : "; it may require a client certificate: set tls.certFile and tls.keyFile"))
    }

    private func classify(_ result: Int32, during what: String) -> RedisError {
        let savedErrno = cs_ssl_errno()
        let code = SSL_get_error(ssl, result)
        switch code {
        case SSL_ERROR_ZERO_RETURN:
            return RedisError(kind: .eof, endpoint: endpoint, message: "the server closed the TLS connection")
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return timedOut(what)
        case SSL_ERROR_SYSCALL:
            ERR_clear_error()
            switch savedErrno {
            case EAGAIN, EWOULDBLOCK, ETIMEDOUT:
                return timedOut(what)
            case 0:
                return RedisError(kind: .eof, endpoint: endpoint, message: "the server closed the connection during the TLS \(what)")
            default:
                return RedisError(kind: .io, endpoint: endpoint,
                                  message: "TLS \(what): \(String(cString: strerror(savedErrno)))")
            }
        default:
            let error = Self.failure("TLS \(what) failed", endpoint: endpoint)
            if error.message.contains("unexpected eof") {
                return RedisError(kind: .eof, endpoint: endpoint, message: error.message)
            }
            return error
        }
    }

    private func timedOut(_ what: String) -> RedisError {
        RedisError(kind: .timeout, endpoint: endpoint, message: "TLS \(what) timed out"
                   + (answered ? "" : " (does the server speak TLS on this port?)"))
    }

    /// `.tls` with `what` and the reasons OpenSSL queued on this thread (cleared), with a hint for the usual ones.
    private static func failure(_ what: String, endpoint: String) -> RedisError {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            if let reason = ERR_reason_error_string(code) {
                reasons.append(String(cString: reason))
            } else {
                reasons.append("error \(code)")
            }
        }
        var message = what + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; "))
        if reasons.contains(where: { $0.contains("certificate required") || $0.contains("handshake failure") }) {
            message += " (the server may require a client certificate: set tls.certFile and tls.keyFile)"
        } else if reasons.contains(where: { $0.contains("unknown ca") || $0.contains("bad certificate") }) {
            message += " (the server does not accept this client certificate)"
        } else if reasons.contains(where: { $0.contains("wrong version number") || $0.contains("packet length too long") }) {
            message += " (the server does not speak TLS on this port)"
        }
        return RedisError(kind: .tls, endpoint: endpoint, message: message)
    }

    /// Whether `name` is an IPv4 or IPv6 literal.
    private static func isIPAddress(_ name: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }
}
