import Testing
@testable import CacheSyncCore

/// The effective config of `check-config` and URI redaction.
@Suite("Config rendering and redaction")
struct ConfigRenderingTests {
    @Test("redactedURI hides passwords and keeps everything else", arguments: [
        ("mongodb://app:s3cret@db1:27017,db2:27017/shop?replicaSet=rs0",
         "mongodb://app:***@db1:27017,db2:27017/shop?replicaSet=rs0"),
        ("mongodb+srv://app:p@ss/w@cluster.example.net/?retryWrites=true",
         "mongodb+srv://app:***@cluster.example.net/?retryWrites=true"),
        ("mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"),
        ("mongodb://onlyuser@h/?authSource=admin", "mongodb://onlyuser@h/?authSource=admin"),
        ("mongodb://h/?authMechanismProperties=x&password=hunter2", "mongodb://h/?authMechanismProperties=x&password=***"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://user:pw@cache", "redis://user:***@cache"),
        ("user:pw@host", "user:***@host"),
        // A password with an unescaped ? or #, or an @ in the query: everything after the user name is hidden.
        ("redis://app:pa?ss-W0rd@cache:6379/0", "redis://app:***"),
        ("mongodb://db1:27017/?tls=true&tlsCertificateKeyFilePassword=cert@Secret9", "mongodb://db1:***"),
        ("mongodb://app:s3cret@db1/?appName=orders@eu", "mongodb://app:***"),
    ])
    func redaction(uri: String, expected: String) {
        #expect(ConfigRenderer.redactedURI(uri) == expected)
    }

    @Test("the effective config shows defaults and never the passwords")
    func effectiveConfig() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb:
              uri: "mongodb://app:mongo-pw@db:27017/?replicaSet=rs0"
              database: shop
            redis:
              url: "redis://cache:redis-pw@cache:6379/1"
            lease: { instanceId: "pod \\"a\\"" }
            collections:
              users: { strategy: invalidate }
              sessions: { strategy: preserve-ttl, ttl: { base: 3600 } }
            """, path: "prod.yaml")
        let text = ConfigRenderer.render(config)
        #expect(!text.contains("mongo-pw"))
        #expect(!text.contains("redis-pw"))
        #expect(text == """
            # effective configuration from prod.yaml (secrets redacted)
            mongodb:
              uri: "mongodb://app:***@db:27017/?replicaSet=rs0"
              database: "shop"
            redis:
              url: "redis://cache:***@cache:6379/1"
              keyPrefix: ""
            http:
              listen: "127.0.0.1:9464"
              silenceWarning: 0
            checkpoint:
              keyPrefix: "cachesync:"
            lease:
              enabled: true
              ttl: 10
              instanceId: "pod \\"a\\""
            shutdownTimeout: 10
            readyAfterWarmup: false
            collections:
              "users":
                database: "shop"
                strategy: invalidate
                operations: [update, replace, delete]
                ttl:
                  base: 300
                  tiers: []
                keyTemplate: "{coll}:{id}"
                idType: auto
                onHistoryLost: flush
                maxValueBytes: 1048576
                notFoundTtl: 5
                accessCounts:
                  window: 86400
                format: json
                warmup: none
              "sessions":
                database: "shop"
                strategy: preserve-ttl
                operations: [insert, update, replace, delete]
                ttl:
                  base: 3600
                  tiers: []
                keyTemplate: "{coll}:{id}"
                idType: auto
                onHistoryLost: flush
                maxValueBytes: 1048576
                notFoundTtl: 5
                accessCounts:
                  window: 86400
                format: json
                warmup: none

            """)
    }

    @Test("a rendered config without redaction parses back to the same config")
    func roundTrip() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://u:p@h", database: shop }
            redis: { url: "redis://:pw@[::1]:6390/2", keyPrefix: "x:" }
            http: { listen: "[::]:9000", silenceWarning: 1.5, api: { listen: "[::1]:9001", tokenFile: /run/token } }
            lease: { enabled: false, ttl: 3 }
            shutdownTimeout: 2.5
            defaults: { ttl: { base: 10, tiers: [{ minAccesses: 3, ttl: 20 }] } }
            collections:
              users: { strategy: update, operations: [delete], keyTemplate: "u:{db}:{id}", idType: uuid }
              logs: { strategy: invalidate, database: other, onHistoryLost: fail, maxValueBytes: 10 }
            """)
        #expect(try ConfigLoader.parse(text: ConfigRenderer.render(config, redactSecrets: false)) == config)
    }

    @Test("TLS, the password file and Sentinel render, parse back to the same config, and hide the sentinels' password")
    func productionRedis() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://db:27017", database: shop }
            redis:
              url: "rediss://app@mymaster/2"
              passwordFile: /run/secrets/redis
              tls: { caFile: /etc/tls/ca.crt, certFile: /etc/tls/tls.crt, keyFile: /etc/tls/tls.key, serverName: redis.internal }
              sentinel:
                masterName: mymaster
                nodes: ["s0:26380", "[::1]:26381", s2]
                username: watcher
                password: sentinel-Pw-9
            collections:
              users: { strategy: invalidate }
            """, path: "prod.yaml")
        #expect(config.redis.effectiveTLS?.serverName == "redis.internal")
        #expect(config.redis.sentinel?.nodes.map { "\($0.host)|\($0.port)" } == ["s0|26380", "::1|26381", "s2|26379"])
        let redacted = ConfigRenderer.render(config)
        #expect(!redacted.contains("sentinel-Pw-9"))
        #expect(redacted.contains("passwordFile: \"/run/secrets/redis\""))
        #expect(redacted.contains("nodes: [\"s0:26380\", \"[::1]:26381\", \"s2:26379\"]"))
        let full = ConfigRenderer.render(config, redactSecrets: false)
        let reparsed = try ConfigLoader.parse(text: full, path: "again.yaml")
        #expect(reparsed.redis == config.redis)
    }

    @Test("a cluster config renders, parses back, and its ACL rule adds the cluster commands and derived-key patterns")
    func clusterRedis() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://db:27017", database: shop }
            redis:
              url: "rediss://app@redis-0:6380/0"
              cluster: { nodes: ["redis-1:6380", redis-2] }
            collections:
              users: { strategy: invalidate }
            """, path: "cluster.yaml")
        #expect(config.redis.cluster?.nodes.map(\.description) == ["redis-1:6380", "redis-2:6379"])
        let reparsed = try ConfigLoader.parse(text: ConfigRenderer.render(config, redactSecrets: false), path: "again.yaml")
        #expect(reparsed.redis == config.redis)
        let acl = RedisACL.setUserCommand(config)
        #expect(acl.contains("~users:* ~{users:*}:*") || acl.contains("~{users:*}:*"), "\(acl)")
        #expect(acl.hasSuffix("+cluster|slots +asking +wait +hget +hset"), "\(acl)")
        let single = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://db:27017", database: shop }
            redis: { url: "redis://redis-0:6379/0" }
            collections:
              users: { strategy: invalidate }
            """, path: "single.yaml")
        #expect(!RedisACL.setUserCommand(single).contains("cluster"))
    }
}
