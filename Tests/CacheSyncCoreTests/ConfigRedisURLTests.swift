import Testing
@testable import CacheSyncCore

/// `redis.url` parsing into `RedisURL`.
@Suite("Config Redis URL")
struct ConfigRedisURLTests {
    @Test("host, port and db are read, with defaults 6379 and 0")
    func basicForms() throws {
        #expect(try RedisURL(parsing: "redis://cache") == RedisURL(host: "cache", port: 6379, db: 0))
        #expect(try RedisURL(parsing: "redis://cache:6380") == RedisURL(host: "cache", port: 6380, db: 0))
        #expect(try RedisURL(parsing: "redis://cache:6380/4") == RedisURL(host: "cache", port: 6380, db: 4))
        #expect(try RedisURL(parsing: "redis://cache/") == RedisURL(host: "cache"))
        #expect(try RedisURL(parsing: "redis://[::1]:7000/2") == RedisURL(host: "::1", port: 7000, db: 2))
    }

    @Test("user and password are read and percent-decoded")
    func credentials() throws {
        #expect(try RedisURL(parsing: "redis://:pw@h:1/0") == RedisURL(host: "h", port: 1, db: 0, user: nil, password: "pw"))
        #expect(try RedisURL(parsing: "redis://app:p%40ss%3Aw@h") == RedisURL(host: "h", user: "app", password: "p@ss:w"))
        #expect(try RedisURL(parsing: "redis://app@h") == RedisURL(host: "h", user: "app", password: nil))
    }

    @Test("rediss:// is TLS, with the same parts")
    func tlsScheme() throws {
        let url = try RedisURL(parsing: "rediss://app:pw@cache.example:6380/1")
        #expect(url == RedisURL(host: "cache.example", port: 6380, db: 1, user: "app", password: "pw", tls: true))
        #expect(url.description == "rediss://app:***@cache.example:6380/1")
        #expect(try RedisURL(parsing: "redis://cache").tls == false)
    }

    @Test("the description hides the password")
    func descriptionRedacts() throws {
        let url = try RedisURL(parsing: "redis://app:secret@h:1/2")
        #expect(url.description == "redis://app:***@h:1/2")
        #expect(!"\(url)".contains("secret"))
    }

    @Test("bad URLs are refused with a reason", arguments: [
        ("http://h", "cannot parse \"http://h\" (expected redis://[user[:password]@]host:port[/db], or rediss:// for TLS)"),
        ("redis://h:0", "bad port \"0\" (expected 1 to 65535)"),
        ("redis://h:-1", "bad port \"-1\" (expected 1 to 65535)"),
        ("redis://h/x", "bad database number \"x\" (expected an integer >= 0)"),
        ("redis://:6379", "no host in \"redis://:6379\" (expected redis://[user[:password]@]host:port[/db], or rediss:// for TLS)"),
        ("redis://h?db=1", "query parameters are not supported in \"redis://h?db=1\" (expected redis://[user[:password]@]host:port[/db], or rediss:// for TLS)"),
    ])
    func badURL(text: String, message: String) {
        #expect(throws: RedisURL.ParseError(message: message)) {
            try RedisURL(parsing: text)
        }
    }
}
