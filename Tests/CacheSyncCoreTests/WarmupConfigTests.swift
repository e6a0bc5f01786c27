import BSONModel
import CacheSyncCore
import Testing

@Suite("Warm-up: config and the snapshot's plan")
struct WarmupConfigTests {
    func parse(_ collection: String, defaults: String = "", top: String = "") throws -> CacheSyncConfig {
        try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://db:27017", database: shop }
            redis: { url: "redis://cache:6379/0" }
            \(top)
            \(defaults)
            collections:
              users:
            \(collection)
            """, path: "warm.yaml")
    }

    func error(_ collection: String, defaults: String = "") -> String {
        do {
            _ = try parse(collection, defaults: defaults)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("warmup is off by default; all, none and a map set it; defaults.warmup is inherited")
    func forms() throws {
        #expect(try parse("    strategy: update").collections[0].warmup == .none)
        #expect(try parse("    strategy: update\n    warmup: all").collections[0].warmup == .all)
        #expect(try parse("    strategy: update\n    warmup: none", defaults: "defaults: { warmup: all }").collections[0].warmup == .none)
        #expect(try parse("    strategy: update", defaults: "defaults: { warmup: all }").collections[0].warmup == .all)
        let map = try parse("    strategy: preserve-ttl\n    warmup: { limit: 500, chunkSize: 100, share: 0.25 }").collections[0].warmup
        #expect(map == WarmupSettings(enabled: true, limit: 500, chunkSize: 100, share: 0.25))
        #expect(try parse("    strategy: update\n    warmup: {}").collections[0].warmup == .all)
        // An inherited warm-up does not apply to an invalidate collection, which caches nothing.
        #expect(try parse("    strategy: invalidate", defaults: "defaults: { warmup: all }").collections[0].warmup == .none)
        #expect(try parse("    strategy: update", top: "readyAfterWarmup: true").readyAfterWarmup)
        #expect(try !parse("    strategy: update").readyAfterWarmup)
    }

    @Test("bad warmup values name the file, line and field")
    func errors() {
        #expect(error("    strategy: update\n    warmup: some") == #"warm.yaml:8: collections.users.warmup: unknown warmup "some" (expected none, all, or a map { limit, sort, chunkSize, share })"#)
        #expect(error("    strategy: update\n    warmup: { share: 0 }") == "warm.yaml:8: collections.users.warmup.share: must be above 0 and at most 1 (the share of time spent reading), found \"0\"")
        #expect(error("    strategy: update\n    warmup: { chunkSize: 0 }") == "warm.yaml:8: collections.users.warmup.chunkSize: must be 1 to 100000 documents, found 0")
        #expect(error("    strategy: update\n    warmup: { limit: -1 }") == "warm.yaml:8: collections.users.warmup.limit: must be > 0 documents, found -1")
        #expect(error("    strategy: invalidate\n    warmup: all").hasPrefix("warm.yaml:8: collections.users.warmup: strategy: invalidate never caches"))
        #expect(error("    strategy: update\n    operations: [update, delete]\n    warmup: all").hasPrefix("warm.yaml:9: collections.users.warmup: warm-up caches each document as an insert would"))
        #expect(error("    strategy: update\n    warmup: { chunk: 5 }").hasPrefix("warm.yaml:8: collections.users.warmup.chunk: unknown key \"chunk\""))
    }

    @Test("warmup.sort: field paths to 1 or -1 in the order given, with limit; without limit or with another direction it is refused with file:line")
    func sort() throws {
        let settings = try parse("    strategy: update\n    warmup: { limit: 50, sort: { updatedAt: -1, meta.rank: 1 }, chunkSize: 10 }").collections[0].warmup
        #expect(settings == WarmupSettings(enabled: true, limit: 50, sort: [WarmupSortKey(path: "updatedAt", descending: true),
                                                                            WarmupSortKey(path: "meta.rank", descending: false)],
                                           chunkSize: 10))
        #expect(error("    strategy: update\n    warmup: { sort: { updatedAt: -1 } }") == "warm.yaml:8: collections.users.warmup.sort: needs limit: sort picks which documents to warm, limit says how many (e.g. { limit: 10000, sort: { updatedAt: -1 } })")
        #expect(error("    strategy: update\n    warmup:\n      limit: 10\n      sort:\n        updatedAt: 2") == "warm.yaml:11: collections.users.warmup.sort.updatedAt: must be 1 (ascending) or -1 (descending), found 2")
        #expect(error("    strategy: update\n    warmup: { limit: 10, sort: { updatedAt: desc } }").hasPrefix("warm.yaml:8: collections.users.warmup.sort.updatedAt: "))
        #expect(error("    strategy: update\n    warmup: { limit: 10, sort: {} }") == "warm.yaml:8: collections.users.warmup.sort: must name at least one field, e.g. { updatedAt: -1 }")
        #expect(error("    strategy: update\n    warmup: { limit: 10, sort: { $natural: 1 } }") == "warm.yaml:8: collections.users.warmup.sort.$natural: is not a field path (dotted names, not starting with $)")
        #expect(error("    strategy: update\n    warmup: { limit: 10, sort: -1 }").hasPrefix("warm.yaml:8: collections.users.warmup.sort: expected a map of field paths to 1 or -1"))
        #expect(error("    strategy: update\n    warmup: { limit: 100001, sort: { updatedAt: -1 } }") == "warm.yaml:8: collections.users.warmup.limit: must be at most 100000 documents with sort (the picked _ids are ordered by the server in one command), found 100001")
    }

    @Test("check-config renders warmup and readyAfterWarmup, and the rendering reads back the same")
    func renders() throws {
        let config = try parse("    strategy: update\n    warmup: { limit: 10, chunkSize: 5, share: 0.5 }", top: "readyAfterWarmup: true")
        let rendered = ConfigRenderer.render(config)
        #expect(rendered.contains("readyAfterWarmup: true\n"))
        #expect(rendered.contains("    warmup: { limit: 10, chunkSize: 5, share: 0.5 }\n"))
        let again = try ConfigLoader.parse(text: rendered, path: "again.yaml")
        #expect(again.collections == config.collections && again.readyAfterWarmup)
        #expect(ConfigRenderer.render(try parse("    strategy: update")).contains("    warmup: none\n"))
        let sorted = try parse("    strategy: update\n    warmup: { limit: 50, sort: { updatedAt: -1, meta.rank: 1 } }")
        let sortedText = ConfigRenderer.render(sorted)
        #expect(sortedText.contains("    warmup: { limit: 50, sort: { updatedAt: -1, meta.rank: 1 }, chunkSize: 1024, share: 0.5 }\n"))
        #expect(try ConfigLoader.parse(text: sortedText, path: "again.yaml").collections == sorted.collections)
    }

    @Test("a snapshot document is planned as the stream plans its insert: projected, filtered, sets only")
    func planSnapshot() throws {
        let collection = try parse("    strategy: update\n    project: { secret: 0 }\n    filter: { keep: true }").collections[0]
        let keys = CacheKey.Layout(collection: collection, keyPrefix: "p:")
        var ops: [CacheOp] = []
        let kept: BSONDocument = ["_id": .int32(1), "keep": .bool(true), "secret": .string("s")]
        let dropped: BSONDocument = ["_id": .int32(2), "keep": .bool(false)]
        Strategy.planSnapshot(document: EncodedBSONDocument(kept), collection: collection, keys: keys, into: &ops)
        Strategy.planSnapshot(document: EncodedBSONDocument(dropped), collection: collection, keys: keys, into: &ops)
        #expect(ops == [.set(key: keys.key(id: .int32(1)), value: #"{"_id":1,"keep":true}"#, ttlSeconds: 300)])
        let preserve = try parse("    strategy: preserve-ttl\n    ttl: { base: 60 }").collections[0]
        var writes: [CacheOp] = []
        Strategy.planSnapshot(document: EncodedBSONDocument(kept), collection: preserve, keys: keys, into: &writes)
        #expect(writes == [.set(key: keys.key(id: .int32(1)), value: #"{"_id":1,"keep":true,"secret":"s"}"#, ttlSeconds: 60)])
    }
}
