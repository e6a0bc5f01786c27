import Foundation
import Testing
@testable import CacheSyncCore

/// Good configs: the docs/ARCHITECTURE.md §3 example, defaults and overrides.
@Suite("Config loading")
struct ConfigLoaderTests {
    /// The model the docs/ARCHITECTURE.md §3 example must give.
    static func designModel(sourcePath: String, mongoURI: String = "mongodb://127.0.0.1:27017") -> CacheSyncConfig {
        let ttl = TTLPolicy(base: 300, tiers: [
            TTLTier(minAccesses: 1000, ttl: 3600),
            TTLTier(minAccesses: 100, ttl: 1800),
            TTLTier(minAccesses: 10, ttl: 900),
        ])
        return CacheSyncConfig(
            mongodb: MongoSettings(uri: mongoURI, database: "shop"),
            redis: RedisSettings(url: "redis://127.0.0.1:6379/0", keyPrefix: ""),
            http: HTTPSettings(host: "127.0.0.1", port: 9464, silenceWarningSeconds: 0),
            checkpoint: CheckpointSettings(keyPrefix: "cachesync:"),
            lease: LeaseSettings(enabled: true, ttlSeconds: 10, instanceId: nil),
            collections: [
                CollectionConfig(database: "shop", collection: "users", strategy: .invalidate, ttl: ttl),
                CollectionConfig(database: "shop", collection: "products", strategy: .update, ttl: ttl),
                CollectionConfig(database: "shop", collection: "sessions", strategy: .preserveTTL,
                                 ttl: TTLPolicy(base: 3600, tiers: ttl.tiers)),
            ],
            shutdownTimeout: 10,
            sourcePath: sourcePath)
    }

    /// The path of a fixture under `Fixtures/config/`.
    static func fixturePath(_ name: String) throws -> String {
        let url = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures/config/\(name)")
        return url.path
    }

    @Test("the docs/ARCHITECTURE.md §3 example file loads into the expected model")
    func designExampleLoads() throws {
        let path = try Self.fixturePath("design-example.yaml")
        let config = try ConfigLoader.load(path: path, environment: [:])
        #expect(config == Self.designModel(sourcePath: path))
        #expect(config.redis.endpoint == RedisURL(host: "127.0.0.1", port: 6379, db: 0))
        #expect(config.collections.map(\.namespace) == ["shop.users", "shop.products", "shop.sessions"])
        #expect(config.collections[0].operations == [.update, .replace, .delete])
        #expect(config.collections[1].operations == [.insert, .update, .replace, .delete])
    }

    @Test("the example takes MONGODB_URI from the environment when it is set")
    func designExampleUsesEnvironment() throws {
        let path = try Self.fixturePath("design-example.yaml")
        let uri = "mongodb://app:s3cret@db1:27017,db2:27017/?replicaSet=rs0"
        let config = try ConfigLoader.load(path: path, environment: ["MONGODB_URI": uri])
        #expect(config == Self.designModel(sourcePath: path, mongoURI: uri))
    }

    @Test("a file that does not exist is an error naming the file")
    func missingFile() {
        #expect {
            _ = try ConfigLoader.load(path: "/nonexistent/cachesync.yaml", environment: [:])
        } throws: { error in
            let error = error as? ConfigError
            return error?.file == "/nonexistent/cachesync.yaml" && error?.line == nil
                && error?.description.hasPrefix("/nonexistent/cachesync.yaml: cannot read the config file") == true
        }
    }

    @Test("a minimal config gets the documented defaults")
    func minimalConfigDefaults() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://localhost" }
            collections:
              shop.orders: { strategy: update }
            """)
        #expect(config.mongodb.database == "")
        #expect(config.redis.endpoint == RedisURL())
        #expect(config.http == HTTPSettings())
        #expect(config.checkpoint.keyPrefix == "cachesync:")
        #expect(config.lease == LeaseSettings())
        #expect(config.shutdownTimeout == 10)
        #expect(config.collections == [
            CollectionConfig(database: "shop", collection: "orders", strategy: .update, ttl: TTLPolicy(base: 300)),
        ])
    }

    @Test("every field of every section is read")
    func everyFieldIsRead() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb:
              uri: "mongodb+srv://cluster.example.net"
              database: app
            redis:
              url: "redis://cache:s%40cret@[::1]:6380/3"
              keyPrefix: "c:"
            http:
              listen: "0.0.0.0:8080"
              silenceWarning: 90.5
              api: { listen: "127.0.0.1:8081", tokenFile: /run/secrets/api-token }
            checkpoint:
              keyPrefix: "sync:"
            lease:
              enabled: false
              ttl: 2.5
              instanceId: pod-7
            shutdownTimeout: 30
            defaults:
              ttl: { base: 60, tiers: [{ minAccesses: 5, ttl: 120 }] }
              accessCounts: { window: 3600 }
              maxValueBytes: 2048
              notFoundTtl: 0
              onHistoryLost: fail
            collections:
              users: { strategy: invalidate }
              carts:
                database: other
                strategy: update
                operations: [insert, delete]
                ttl: { tiers: [{ minAccesses: 50, ttl: 900 }, { minAccesses: 2, ttl: 300 }] }
                keyTemplate: "{db}/{coll}/{id}"
                idType: objectId
                onHistoryLost: flush
                maxValueBytes: 100
                notFoundTtl: 30
                accessCounts: { window: 60 }
            """, path: "full.yaml")
        #expect(config.mongodb == MongoSettings(uri: "mongodb+srv://cluster.example.net", database: "app"))
        #expect(config.redis.endpoint == RedisURL(host: "::1", port: 6380, db: 3, user: "cache", password: "s@cret"))
        #expect(config.redis.keyPrefix == "c:")
        var http = HTTPSettings(host: "0.0.0.0", port: 8080, silenceWarningSeconds: 90.5)
        http.apiAddress = .init(host: "127.0.0.1", port: 8081)
        http.apiTokenFile = "/run/secrets/api-token"
        #expect(config.http == http)
        #expect(config.checkpoint.keyPrefix == "sync:")
        #expect(config.lease == LeaseSettings(enabled: false, ttlSeconds: 2.5, instanceId: "pod-7"))
        #expect(config.shutdownTimeout == 30)
        #expect(config.sourcePath == "full.yaml")
        #expect(config.collections == [
            CollectionConfig(database: "app", collection: "users", strategy: .invalidate,
                             ttl: TTLPolicy(base: 60, tiers: [TTLTier(minAccesses: 5, ttl: 120)]),
                             accessWindow: 3600, onHistoryLost: .fail, maxValueBytes: 2048, notFoundTTL: 0),
            CollectionConfig(database: "other", collection: "carts", strategy: .update, operations: [.insert, .delete],
                             ttl: TTLPolicy(base: 60, tiers: [TTLTier(minAccesses: 50, ttl: 900),
                                                              TTLTier(minAccesses: 2, ttl: 300)]),
                             accessWindow: 60, keyTemplate: "{db}/{coll}/{id}", idType: .objectId,
                             onHistoryLost: .flush, maxValueBytes: 100, notFoundTTL: 30),
        ])
    }

    @Test("a collection ttl overrides defaults.ttl field by field: base alone keeps the tiers, tiers: [] drops them")
    func collectionTTLOverridesFieldByField() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://localhost", database: shop }
            defaults:
              ttl: { base: 300, tiers: [{ minAccesses: 10, ttl: 900 }] }
            collections:
              hot: { strategy: update }
              cold: { strategy: update, ttl: { base: 60 } }
              flat: { strategy: update, ttl: { tiers: [] } }
              own: { strategy: update, ttl: { tiers: [{ minAccesses: 2, ttl: 30 }] } }
            """)
        let tiers = [TTLTier(minAccesses: 10, ttl: 900)]
        #expect(config.collections.map(\.ttl) == [
            TTLPolicy(base: 300, tiers: tiers),
            TTLPolicy(base: 60, tiers: tiers),
            TTLPolicy(base: 300, tiers: []),
            TTLPolicy(base: 300, tiers: [TTLTier(minAccesses: 2, ttl: 30)]),
        ])
    }

    @Test("defaults.ttl with only base keeps the built-in policy's (empty) tiers")
    func defaultsTTLBaseOnly() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://localhost", database: shop }
            defaults: { ttl: { base: 42 } }
            collections:
              users: { strategy: update }
              carts: { strategy: update, ttl: { base: 7 } }
            """)
        #expect(config.collections.map(\.ttl) == [TTLPolicy(base: 42, tiers: []), TTLPolicy(base: 7, tiers: [])])
    }

    @Test("a database field names the collection's database and takes the key verbatim, dots included")
    func explicitDatabase() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://localhost", database: shop }
            collections:
              orders.v2: { strategy: update, database: shop }
              v2: { strategy: invalidate, database: orders }
              users: { strategy: invalidate }
            """)
        #expect(config.collections.map(\.namespace) == ["shop.orders.v2", "orders.v2", "shop.users"])
        #expect(config.collections[0].database == "shop" && config.collections[0].collection == "orders.v2")
        let noDefault = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://localhost" }
            collections:
              shop.orders.v2: { strategy: update }
              audit.log: { strategy: invalidate, database: ops }
            """)
        #expect(noDefault.collections.map { [$0.database, $0.collection] } == [["shop", "orders.v2"], ["ops", "audit.log"]])
    }

    @Test("YAML anchors and merge keys share settings between collections; own keys win")
    func mergeKeys() throws {
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://localhost", database: shop }
            x-shared: &shared
              onHistoryLost: fail
            collections:
              users: &cached
                strategy: update
                ttl: { base: 30 }
                idType: string
              products:
                <<: [*cached, *shared]
                idType: int
            """)
        #expect(config.collections[0] == CollectionConfig(database: "shop", collection: "users", strategy: .update,
                                                          ttl: TTLPolicy(base: 30), idType: .string))
        #expect(config.collections[1] == CollectionConfig(database: "shop", collection: "products", strategy: .update,
                                                          ttl: TTLPolicy(base: 30), idType: .int, onHistoryLost: .fail))
    }

    @Test("the effective config of dotted names, with and without mongodb.database, parses back to the same config")
    func dottedNamesRoundTrip() throws {
        let texts = ["""
            mongodb: { uri: "mongodb://localhost", database: shop }
            collections:
              orders.v2: { strategy: update, database: shop }
              v2: { strategy: invalidate, database: orders }
            """, """
            mongodb: { uri: "mongodb://localhost" }
            collections:
              shop.orders.v2: { strategy: update }
              catalog.products: { strategy: invalidate }
            """]
        for text in texts {
            let config = try ConfigLoader.parse(text: text)
            #expect(try ConfigLoader.parse(text: ConfigRenderer.render(config, redactSecrets: false)) == config)
        }
    }

    @Test("the effective config parses back to the same config")
    func renderedConfigRoundTrips() throws {
        let path = try Self.fixturePath("design-example.yaml")
        let config = try ConfigLoader.load(path: path, environment: [:])
        let text = ConfigRenderer.render(config, redactSecrets: false)
        let again = try ConfigLoader.parse(text: text, path: path)
        #expect(again == config)
    }
}
