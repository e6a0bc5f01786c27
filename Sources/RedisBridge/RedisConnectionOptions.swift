import Foundation

/// Where and how a `RedisConnection` connects: endpoint, database, credentials and timeouts.
public struct RedisConnectionOptions: Sendable, Hashable, CustomStringConvertible {
    /// Host name or IP address of the server.
    public var host: String
    /// TCP port of the server.
    public var port: Int
    /// Database selected after connecting (`SELECT db`); 0 sends no SELECT.
    public var db: Int
    /// ACL user name; `nil` authenticates with the password only (`AUTH password`).
    public var user: String?
    /// Password; `nil` sends no AUTH.
    public var password: String?
    /// A file holding the password, read at every connect; it replaces `password` when set.
    public var passwordFile: String?
    /// How long connecting may take.
    public var connectTimeout: Duration
    /// How long one read or write on the socket may block; `nil` blocks without limit.
    public var commandTimeout: Duration?
    /// TLS for the connection; `nil` is plaintext.
    public var tls: RedisTLSOptions?
    /// Find the master through these sentinels at every connect (`host` and `port` are then not used).
    public var sentinel: RedisSentinelOptions?

    /// Options for `host:port` with the given database, credentials and timeouts.
    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        db: Int = 0,
        user: String? = nil,
        password: String? = nil,
        connectTimeout: Duration = .seconds(5),
        commandTimeout: Duration? = .seconds(30),
        tls: RedisTLSOptions? = nil,
        sentinel: RedisSentinelOptions? = nil
    ) {
        self.tls = tls
        self.sentinel = sentinel
        self.host = host
        self.port = port
        self.db = db
        self.user = user
        self.password = password
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// Options from `redis://[user[:password]@]host[:port][/db]`, a convenience for tests; `nil` if it does not parse.
    ///
    /// The product parses and validates Redis URLs in the pure core; this initialiser reports no reasons.
    public init?(url: String) {
        guard let components = URLComponents(string: url), components.scheme == "redis",
              let host = components.host, !host.isEmpty
        else { return nil }
        var db = 0
        let path = components.path.drop(while: { $0 == "/" })
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else { return nil }
            db = number
        }
        let user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        self.init(host: host, port: components.port ?? 6379, db: db, user: user, password: components.password)
    }

    /// Options for a connection to the sentinel `node` of `sentinel`: its own credentials, the data connection's TLS
    /// (the certificate checked against the sentinel's own host name) and connect timeout.
    func sentinelNode(_ node: RedisSentinelOptions.Node, of sentinel: RedisSentinelOptions,
                      commandTimeout: Duration) -> RedisConnectionOptions {
        var nodeOptions = RedisConnectionOptions(host: node.host, port: node.port, user: sentinel.user,
                                                 password: sentinel.password, connectTimeout: connectTimeout,
                                                 commandTimeout: commandTimeout, tls: tls)
        nodeOptions.tls?.serverName = nil
        return nodeOptions
    }

    /// `host:port`, or the master's name behind Sentinel, as used in error messages.
    public var endpoint: String {
        sentinel.map { "master \($0.masterName) (via Sentinel)" } ?? "\(host):\(port)"
    }

    /// The options without the password, safe to log.
    public var description: String {
        var text = tls == nil ? "redis://" : "rediss://"
        let hasPassword = password != nil || passwordFile != nil
        if let user { text += user + (hasPassword ? ":***@" : "@") } else if hasPassword { text += ":***@" }
        return text + (sentinel.map { "\($0.masterName)" } ?? endpoint) + "/\(db)"
    }
}
