import Foundation
import Testing
@testable import CacheSyncCore

/// `ConfigDiff`: what a reload adds, removes, changes, and which settings need a restart.
@Suite("Config diff for reloads")
struct ConfigDiffTests {
    /// A config with `collections` (YAML lines under `collections:`), `extra` top-level sections and a default TTL.
    static func config(_ collections: String, mongoURI: String = "mongodb://127.0.0.1:27017",
                       redis: String = "redis://127.0.0.1:6379/0", extra: String = "",
                       baseTTL: Int = 300) throws -> CacheSyncConfig {
        try ConfigLoader.parse(text: """
            mongodb:
              uri: "\(mongoURI)"
              database: shop
            redis:
              url: "\(redis)"
            \(extra)
            defaults:
              ttl: { base: \(baseTTL) }
            collections:
            \(collections)
            """, path: "reload.yaml")
    }

    static let three = """
          users:
            strategy: invalidate
          products:
            strategy: update
          sessions:
            strategy: preserve-ttl
        """

    @Test("the same file: nothing added, removed, changed or needing a restart")
    func same() throws {
        let diff = ConfigDiff(old: try Self.config(Self.three), new: try Self.config(Self.three))
        #expect(diff.collectionsUnchanged)
        #expect(diff.restartNeeded.isEmpty)
        #expect(diff.summary == "added none; removed none; changed none")
    }

    @Test("a collection added, one removed and one whose strategy changed are told apart; the untouched one is in none")
    func addedRemovedChanged() throws {
        let old = try Self.config(Self.three)
        let new = try Self.config("""
              users:
                strategy: invalidate
              products:
                strategy: invalidate
              orders:
                strategy: update
            """)
        let diff = ConfigDiff(old: old, new: new)
        #expect(diff.added.map(\.namespace) == ["shop.orders"])
        #expect(diff.removed.map(\.namespace) == ["shop.sessions"])
        #expect(diff.changed.map(\.old.strategy) == [.update])
        #expect(diff.changed.map(\.new.strategy) == [.invalidate])
        #expect(diff.changed.map(\.new.namespace) == ["shop.products"])
        #expect(diff.restartNeeded.isEmpty)
        #expect(diff.summary == "added shop.orders; removed shop.sessions; changed shop.products")
    }

    @Test("a changed field of one collection (ttl, keyTemplate) changes that collection only")
    func oneCollectionChanged() throws {
        let old = try Self.config(Self.three)
        let new = try Self.config(Self.three + "\n    ttl: { base: 60 }")
        #expect(ConfigDiff(old: old, new: new).changed.map(\.new.namespace) == ["shop.sessions"])
        let renamedTemplate = try Self.config(Self.three.replacingOccurrences(
            of: "strategy: update", with: "strategy: update\n    keyTemplate: \"p:{id}\""))
        #expect(ConfigDiff(old: old, new: renamedTemplate).changed.map(\.new.keyTemplate) == ["p:{id}"])
    }

    @Test("a changed default reaches every collection that inherits it: they count as changed")
    func defaultsChangeCollections() throws {
        let old = try Self.config(Self.three)
        let new = try Self.config(Self.three, baseTTL: 60)
        let diff = ConfigDiff(old: old, new: new)
        #expect(diff.changed.map(\.new.namespace) == ["shop.users", "shop.products", "shop.sessions"])
        #expect(diff.restartNeeded.isEmpty)
    }

    @Test("moving a collection to another database is a removal and an addition")
    func movedDatabase() throws {
        let old = try Self.config(Self.three)
        let new = try Self.config(Self.three.replacingOccurrences(
            of: "strategy: preserve-ttl", with: "strategy: preserve-ttl\n    database: archive"))
        let diff = ConfigDiff(old: old, new: new)
        #expect(diff.added.map(\.namespace) == ["archive.sessions"])
        #expect(diff.removed.map(\.namespace) == ["shop.sessions"])
        #expect(diff.changed.isEmpty)
    }

    @Test("settings read only at start are named (restart needed), never their values")
    func restartNeeded() throws {
        let old = try Self.config(Self.three)
        let new = try Self.config(Self.three, mongoURI: "mongodb://app:s3cret@db.example:27017",
                                  redis: "redis://:hunter2@cache.example:6380/1", extra: """
            http:
              listen: "0.0.0.0:9999"
            checkpoint:
              keyPrefix: "other:"
            lease:
              ttl: 5
            shutdownTimeout: 3
            readyAfterWarmup: true
            """)
        let diff = ConfigDiff(old: old, new: new)
        #expect(diff.restartNeeded == ["mongodb.uri", "redis.url", "http.listen", "checkpoint.keyPrefix", "lease.ttl",
                                       "shutdownTimeout", "readyAfterWarmup"])
        #expect(diff.collectionsUnchanged)
        #expect(!diff.restartNeeded.joined().contains("s3cret") && !diff.restartNeeded.joined().contains("hunter2"))
    }

    @Test("every other restart-only field is named: redis.keyPrefix, redis.passwordFile, http.silenceWarning, http.api.*, lease.enabled, lease.instanceId")
    func restartNeededOthers() throws {
        let old = try Self.config(Self.three)
        let new = try Self.config(Self.three, extra: """
            http:
              listen: "127.0.0.1:9464"
              silenceWarning: 30
              api: { listen: "127.0.0.1:9465", tokenFile: /run/token }
            lease: { enabled: false, instanceId: pod-9 }
            """)
        var renamed = new
        renamed.redis.keyPrefix = "app:"
        renamed.redis.passwordFile = "/run/pw"
        #expect(ConfigDiff(old: old, new: renamed).restartNeeded == [
            "redis.keyPrefix", "redis.passwordFile", "http.silenceWarning", "http.api.listen", "http.api.tokenFile",
            "lease.enabled", "lease.instanceId",
        ])
    }

    @Test("a changed mongodb.database with every collection's database written out is no restart and no change")
    func defaultDatabase() throws {
        let text = """
              users:
                strategy: invalidate
                database: shop
            """
        let old = try Self.config(text)
        var new = old
        new.mongodb.database = "other"
        let diff = ConfigDiff(old: old, new: new)
        #expect(diff.restartNeeded.isEmpty)
        #expect(diff.collectionsUnchanged)
    }
}
