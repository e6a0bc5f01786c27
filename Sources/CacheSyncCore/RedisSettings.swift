/// `redis:` settings.
public struct RedisSettings: Sendable, Equatable {
    /// `redis://[user[:password]@]host:port[/db]`, or `rediss://` for TLS (may hold a password: never log it).
    public var url: String
    /// Prepended to every cache key.
    public var keyPrefix: String
    /// `url` parsed: scheme, host, port, database number, user and password.
    public var endpoint: RedisURL
    /// A file holding the password, read at every connect (a rotated Kubernetes Secret is used at the next
    /// reconnect); it replaces the URL's password.
    public var passwordFile: String?
    /// TLS settings; `nil` with `rediss://` means the system's CAs and the URL's host checked.
    public var tls: RedisTLSSettings?
    /// Find the master through Redis Sentinel; `nil` connects to the URL's host.
    public var sentinel: RedisSentinelSettings?
    /// The Redis is a cluster: route every key to its slot's master; `nil` for one server.
    public var cluster: RedisClusterSettings?

    /// Settings with a URL and a key prefix; a URL that does not parse gives the default endpoint
    /// (`ConfigLoader` rejects such URLs before they get here).
    public init(url: String, keyPrefix: String = "") {
        self.url = url
        self.keyPrefix = keyPrefix
        self.endpoint = (try? RedisURL(parsing: url)) ?? RedisURL()
    }

    /// Settings from an already parsed endpoint.
    public init(url: String, endpoint: RedisURL, keyPrefix: String = "", passwordFile: String? = nil,
                tls: RedisTLSSettings? = nil, sentinel: RedisSentinelSettings? = nil,
                cluster: RedisClusterSettings? = nil) {
        self.sentinel = sentinel
        self.cluster = cluster
        self.url = url
        self.keyPrefix = keyPrefix
        self.endpoint = endpoint
        self.passwordFile = passwordFile
        self.tls = tls
    }

    /// The TLS settings in force: `tls`, or the defaults when the URL is `rediss://`; `nil` for plaintext.
    public var effectiveTLS: RedisTLSSettings? {
        endpoint.tls ? (tls ?? RedisTLSSettings()) : nil
    }
}
