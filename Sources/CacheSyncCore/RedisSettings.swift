/// `redis:` settings.
public struct RedisSettings: Sendable, Equatable {
    /// `redis://[user[:password]@]host:port[/db]` (may hold a password: never log it).
    public var url: String
    /// Prepended to every cache key.
    public var keyPrefix: String
    /// `url` parsed: host, port, database number, user and password.
    public var endpoint: RedisURL

    /// Settings with a URL and a key prefix; a URL that does not parse gives the default endpoint
    /// (`ConfigLoader` rejects such URLs before they get here).
    public init(url: String, keyPrefix: String = "") {
        self.url = url
        self.keyPrefix = keyPrefix
        self.endpoint = (try? RedisURL(parsing: url)) ?? RedisURL()
    }

    /// Settings from an already parsed endpoint.
    public init(url: String, endpoint: RedisURL, keyPrefix: String = "") {
        self.url = url
        self.keyPrefix = keyPrefix
        self.endpoint = endpoint
    }
}
