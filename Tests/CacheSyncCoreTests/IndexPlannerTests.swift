import BSONModel
import CacheSyncCore
import Testing

@Suite("Secondary keys: templates, config and the planner")
struct IndexPlannerTests {
    func parse(_ collection: String, keyPrefix: String = "") throws -> CollectionConfig {
        try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://db:27017", database: shop }
            redis: { url: "redis://cache:6379/0", keyPrefix: "\(keyPrefix)" }
            collections:
              users:
            \(collection)
            """, path: "idx.yaml").collections[0]
    }

    func configError(_ collection: String) -> String {
        do {
            _ = try parse(collection)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func templatesRenderFieldsAndSkipWhatHasNoKeyText() throws {
        let users = try parse("""
                strategy: update
                indexes:
                  - key: "user:email:{email}"
                  - key: "user:{profile.handle}:{coll}:{id}"
                    value: document
            """, keyPrefix: "app:")
        #expect(users.indexes.map(\.value) == [.key, .document])
        let doc: BSONDocument = ["_id": .int32(7), "email": .string("a@x"), "profile": .document(["handle": .int64(42)])]
        let index = users.indexes[1]
        #expect(index.key(of: doc, id: .int32(7), keyPrefix: "app:", database: "shop", collection: "users")
            == .success("app:user:42:users:7"))
        #expect(users.indexes[0].key(of: ["_id": .int32(1)], id: .int32(1), keyPrefix: "", database: "shop",
                                     collection: "users") == .failure(.missing))
        #expect(users.indexes[0].key(of: ["_id": .int32(1), "email": .double(1.5)], id: .int32(1), keyPrefix: "",
                                     database: "shop", collection: "users") == .failure(.type))
        #expect(users.indexes[0].key(of: ["_id": .int32(1), "email": .string("a\0b")], id: .int32(1), keyPrefix: "",
                                     database: "shop", collection: "users") == .failure(.type))
        #expect(index.pattern(keyPrefix: "app:", database: "shop", collection: "users") == "app:user:*:users:*")
        #expect(users.indexes[0].soleFieldText(of: "user:email:a@x", keyPrefix: "", database: "shop", collection: "users")?.text == "a@x")
    }

    @Test func configErrorsNameTheField() {
        #expect(configError("    strategy: invalidate\n    indexes: [ { key: \"u:{email}\" } ]").contains("strategy: invalidate"))
        #expect(configError("    strategy: update\n    indexes: [ { key: \"u:{id}\" } ]").contains("no field placeholder"))
        #expect(configError("    strategy: update\n    indexes: [ { key: \"users:email:{email}\" } ]").contains("also match"))
        #expect(configError("    strategy: update\n    indexes: [ { key: \"u:{email}\", value: copy } ]").contains("unknown value \"copy\""))
        #expect(configError("    strategy: update\n    indexes: [ { key: \"u:{email\" } ]").contains("unclosed"))
        #expect(configError("    strategy: update\n    indexes: [ { key: \"u:{email}\", vlaue: key } ]").contains("did you mean \"value\""))
        #expect(configError("    strategy: update\n    indexes: [ { key: \"u:{email}\" } ]\n    preImages: true") == "no error")
    }

    @Test func renderedConfigReadsBack() throws {
        let users = try parse("    strategy: update\n    preImages: true\n    indexes: [ { key: \"user:email:{email}\", value: document } ]")
        let config = try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://db:27017", database: shop }
            redis: { url: "redis://cache:6379/0" }
            collections:
              users:
                strategy: update
                preImages: true
                indexes: [ { key: "user:email:{email}", value: document } ]
            """, path: "a.yaml")
        let again = try ConfigLoader.parse(text: ConfigRenderer.render(config), path: "b.yaml")
        #expect(again.collections[0] == users)
    }

    static let primaryA = CacheKey(text: "users:1")
    static let primaryB = CacheKey(text: "users:2")

    func change(_ primary: CacheKey, _ keys: [String], before: [String]? = nil) -> IndexPlanner.Change {
        IndexPlanner.Change(primary: primary, idKeyText: primary == Self.primaryA ? "1" : "2",
                            entries: keys.map { ($0, primary.text) }, before: before, ttlSeconds: 60)
    }

    @Test func recordGivesTheOldKeysAndTheBatchChainsThem() {
        // A changes email x → y → z in one batch; its record said x.
        let planner = IndexPlanner(changes: [change(Self.primaryA, ["e:y"]), change(Self.primaryA, ["e:z"])], keepsRecords: true)
        #expect(planner.recordsToRead == ["users:1:indexes"])
        let records: [String?] = ["e:x"]
        #expect(planner.oldKeysToRead(records: records) == ["e:x", "e:y"])
        let ops = planner.ops(records: records, oldKeys: ["e:x", "e:y"], oldValues: ["users:1", nil])
        #expect(ops == [
            .indexDelete(key: "e:x"), .indexSet(key: "e:y", value: "users:1", ttlSeconds: 60),
            .indexSet(key: "users:1:indexes", value: "e:y", ttlSeconds: 60),
            .indexDelete(key: "e:y"), .indexSet(key: "e:z", value: "users:1", ttlSeconds: 60),
            .indexSet(key: "users:1:indexes", value: "e:z", ttlSeconds: 60),
        ])
    }

    @Test func onAClusterARecordAlsoNamesTheKeysItsChangeDeleted() {
        // A moves from e:x to e:y: the record names both, so a replay after a partial batch (the record written, the
        // deletion of e:x lost with its master) deletes e:x again.
        let first = IndexPlanner(changes: [change(Self.primaryA, ["e:y"])], keepsRecords: true, recordsNameDropped: true)
        #expect(first.ops(records: ["e:x"], oldKeys: ["e:x"], oldValues: ["users:1"]) == [
            .indexDelete(key: "e:x"), .indexSet(key: "e:y", value: "users:1", ttlSeconds: 60),
            .indexSet(key: "users:1:indexes", value: "e:y\0e:x", ttlSeconds: 60),
        ])
        let replay = IndexPlanner(changes: [change(Self.primaryA, ["e:y"])], keepsRecords: true, recordsNameDropped: true)
        let records: [String?] = ["e:y\0e:x"]
        #expect(replay.oldKeysToRead(records: records) == ["e:x"])
        #expect(replay.ops(records: records, oldKeys: ["e:x"], oldValues: ["users:1"]) == [
            .indexDelete(key: "e:x"), .indexSet(key: "e:y", value: "users:1", ttlSeconds: 60),
            .indexSet(key: "users:1:indexes", value: "e:y\0e:x", ttlSeconds: 60),
        ])
        // Once e:x is gone, the next change's record names only what it wrote and deleted: it does not grow.
        #expect(replay.ops(records: records, oldKeys: ["e:x"], oldValues: [nil]) == [
            .indexSet(key: "e:y", value: "users:1", ttlSeconds: 60),
            .indexSet(key: "users:1:indexes", value: "e:y", ttlSeconds: 60),
        ])
        // A delete keeps the record naming the deleted keys (until its TTL), for the same reason.
        let delete = IndexPlanner(changes: [change(Self.primaryA, [])], keepsRecords: true, recordsNameDropped: true)
        #expect(delete.ops(records: ["e:y"], oldKeys: ["e:y"], oldValues: ["users:1"]) == [
            .indexDelete(key: "e:y"), .indexSet(key: "users:1:indexes", value: "e:y", ttlSeconds: 60),
        ])
    }

    @Test func aKeyAnotherDocumentClaimedIsNotDeleted() {
        // B took e:x (the later write won); A, whose record still says e:x, moves to e:y and is then deleted.
        let planner = IndexPlanner(changes: [change(Self.primaryA, ["e:y"]), change(Self.primaryA, [])], keepsRecords: true)
        let ops = planner.ops(records: ["e:x"], oldKeys: ["e:x", "e:y"], oldValues: ["users:2", nil])
        #expect(ops == [
            .indexSet(key: "e:y", value: "users:1", ttlSeconds: 60),
            .indexSet(key: "users:1:indexes", value: "e:y", ttlSeconds: 60),
            .indexDelete(key: "e:y"), .indexDelete(key: "users:1:indexes"),
        ])
    }

    @Test func preImagesNeedNoRecordAndCopiesAreKnownByTheirID() {
        let copyOfA = #"{"_id":1.0,"email":"x"}"#
        var moved = change(Self.primaryA, [], before: ["e:x"])
        moved.entries = [("e:y", #"{"_id":1,"email":"y"}"#)]
        let planner = IndexPlanner(changes: [moved, change(Self.primaryB, [], before: ["e:q"])], keepsRecords: false)
        #expect(planner.recordsToRead.isEmpty)
        let old = planner.oldKeysToRead(records: [])
        #expect(old == ["e:x", "e:q"])
        let ops = planner.ops(records: [], oldKeys: old, oldValues: [copyOfA, #"{"_id":12,"email":"q"}"#])
        #expect(ops == [.indexDelete(key: "e:x"), .indexSet(key: "e:y", value: #"{"_id":1,"email":"y"}"#, ttlSeconds: 60)],
                "the copy of _id 12 is not document 2's")
    }
}
