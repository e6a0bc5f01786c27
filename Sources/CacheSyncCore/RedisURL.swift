import Foundation

/// A parsed `redis://[user[:password]@]host[:port][/db]` address, or `rediss://` for TLS.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    /// Whether the scheme is `rediss://`: the connection speaks TLS.
    public var tls: Bool
    /// Host name or IP address (IPv6 without brackets).
    public var host: String
    /// TCP port (default 6379).
    public var port: Int
    /// Database number for `SELECT` (default 0).
    public var db: Int
    /// ACL user name, if given.
    public var user: String?
    /// Password, if given (never log it).
    public var password: String?

    /// An address; the defaults are Redis's own.
    public init(host: String = "127.0.0.1", port: Int = 6379, db: Int = 0, user: String? = nil, password: String? = nil,
                tls: Bool = false) {
        self.tls = tls
        self.host = host
        self.port = port
        self.db = db
        self.user = user
        self.password = password
    }

    /// Why a URL could not be parsed: the text is the message after the field name.
    public struct ParseError: Error, Sendable, Equatable {
        /// What is wrong, e.g. `bad port "0" (expected 1 to 65535)`.
        public var message: String
    }

    /// Parses `redis://[user[:password]@]host[:port][/db]` (or `rediss://`); user and password may be
    /// percent-encoded, and must be when they hold `@`, `/`, `?`, `#` or `%`.
    public init(parsing text: String) throws(ParseError) {
        let expected = "(expected redis://[user[:password]@]host:port[/db], or rediss:// for TLS)"
        let scheme = ["redis://", "rediss://"].first { text.lowercased().hasPrefix($0) }
        guard let scheme else {
            throw ParseError(message: "cannot parse \(Self.quoted(ConfigRenderer.redactedURI(text))) \(expected)")
        }
        var rest = Substring(text.dropFirst(scheme.count))
        if let mark = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            if rest[mark...].contains("@") {
                throw ParseError(message: "the user or password holds \"?\" or \"#\": percent-encode them (%3F, %23) in "
                                 + "\(Self.quoted(ConfigRenderer.redactedURI(text))), or use redis.passwordFile")
            }
            throw ParseError(message: "query parameters are not supported in \(Self.quoted(ConfigRenderer.redactedURI(text))) \(expected)")
        }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let decodedUser = String(parts[0]).removingPercentEncoding else {
                throw ParseError(message: "the user name is not valid percent-encoding \(expected)")
            }
            user = decodedUser.isEmpty ? nil : decodedUser
            if parts.count == 2 {
                guard let decodedPassword = String(parts[1]).removingPercentEncoding else {
                    throw ParseError(message: "the password is not valid percent-encoding \(expected)")
                }
                password = decodedPassword
            }
        }
        var authority = rest
        var dbText: Substring?
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            dbText = rest[rest.index(after: slash)...]
        }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw ParseError(message: "unclosed \"[\" in the host of \(Self.quoted(ConfigRenderer.redactedURI(text))) \(expected)")
            }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw ParseError(message: "cannot parse \(Self.quoted(ConfigRenderer.redactedURI(text))) \(expected)")
                }
                portText = after.dropFirst()
            }
        } else if let colon = authority.firstIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else {
            throw ParseError(message: "no host in \(Self.quoted(ConfigRenderer.redactedURI(text))) \(expected)")
        }
        var port = 6379
        if let portText {
            guard portText.allSatisfy(Self.isDigit), let value = Int(portText), (1...65535).contains(value) else {
                throw ParseError(message: "bad port \(Self.quoted(String(portText))) (expected 1 to 65535)")
            }
            port = value
        }
        var db = 0
        if let dbText, !dbText.isEmpty {
            guard dbText.allSatisfy(Self.isDigit), let value = Int(dbText) else {
                throw ParseError(message: "bad database number \(Self.quoted(String(dbText))) (expected an integer >= 0)")
            }
            db = value
        }
        self.init(host: String(host), port: port, db: db, user: user, password: password, tls: scheme == "rediss://")
    }

    /// The URL with the password replaced by `***`, safe to log.
    public var description: String {
        var text = tls ? "rediss://" : "redis://"
        if user != nil || password != nil {
            text += user ?? ""
            if password != nil {
                text += ":***"
            }
            text += "@"
        }
        text += host.contains(":") ? "[\(host)]" : host
        return text + ":\(port)/\(db)"
    }

    /// Whether `character` is one of `0`-`9`.
    private static func isDigit(_ character: Character) -> Bool {
        character.isASCII && character.isNumber
    }

    /// `"text"` for messages.
    private static func quoted(_ text: String) -> String {
        "\"\(text)\""
    }
}
