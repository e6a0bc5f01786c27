import CacheSyncCore
import Testing

@Suite("Least-privilege Redis ACL")
struct RedisACLTests {
    private func config(_ collections: String, keyPrefix: String = "", checkpoint: String = "cachesync:") throws -> CacheSyncConfig {
        try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://127.0.0.1:27017/?replicaSet=rs0", database: shop }
            redis: { url: "redis://app@127.0.0.1:6379/0", keyPrefix: "\(keyPrefix)" }
            checkpoint: { keyPrefix: "\(checkpoint)" }
            collections:
            \(collections)
            """)
    }

    @Test("one pattern per collection's keys (with their :lease and :access_count) and one for the checkpoints")
    func patterns() throws {
        let c = try config("""
              users: { strategy: invalidate }
              products: { strategy: update, keyTemplate: "v1:{coll}:{id}:json" }
            """, keyPrefix: "app:")
        #expect(RedisACL.keyPatterns(c) == ["app:users:*", "app:v1:products:*:json*", "cachesync:*"])
    }

    @Test("a pattern another covers is left out; glob characters in prefixes are escaped")
    func coveredAndEscaped() throws {
        let covered = try config("  users: { strategy: invalidate }", keyPrefix: "app:", checkpoint: "app:")
        #expect(RedisACL.keyPatterns(covered) == ["app:*"])
        let escaped = try config("  users: { strategy: invalidate }", keyPrefix: "a*b?", checkpoint: "cs[1]:")
        #expect(RedisACL.keyPatterns(escaped) == ["a\\*b\\?users:*", "cs\\[1\\]:*"])
        let spaced = try config("  \"my coll\": { strategy: invalidate }", keyPrefix: "a b:")
        #expect(RedisACL.keyPatterns(spaced) == ["a?b:my?coll:*", "cachesync:*"], "Redis takes no space in a pattern")
        let escapedCover = try config("  users: { strategy: invalidate }", keyPrefix: "a*", checkpoint: "a*")
        #expect(RedisACL.keyPatterns(escapedCover) == ["a\\**"], "a literal * before the glob's still covers")
    }

    @Test("the ACL SETUSER line: the URL's user, no password, no channel, only the listed commands")
    func setUser() throws {
        let line = RedisACL.setUserCommand(try config("  users: { strategy: invalidate }"))
        #expect(line.hasPrefix("ACL SETUSER app on >PASSWORD resetkeys ~cachesync:* ~users:* resetchannels -@all +ping "))
        #expect(line.hasSuffix(" +scan +time +zadd +zremrangebyscore +zcard +pttl"))
        #expect(!line.contains("@write") && !line.contains("flush") && !line.contains("+keys"))
    }
}
