import BSONModel
import Testing
@testable import CacheSyncCore

/// One row of the docs/ARCHITECTURE.md §4 table: a strategy, an event fixture and the ops it must plan.
struct PlanCase: Sendable, CustomTestStringConvertible {
    let strategy: StrategyKind
    let fixture: String
    let expected: [CacheOp]

    var testDescription: String { "\(strategy.rawValue) × \(fixture)" }
}

@Suite("Strategy planner")
struct StrategyTests {
    static let key = CacheKey(text: "app:products:663881d9a1b2c3d4e5f60718")
    static let insertJSON = #"{"_id":{"$oid":"663881d9a1b2c3d4e5f60718"},"name":"Widget \"Pro\"","price":{"$numberDecimal":"19.99"},"qty":5,"views":9007199254740993,"rating":4.5,"weight":2.0,"tags":["a","b"],"updatedAt":{"$date":"2024-05-06T07:08:09.123Z"}}"#
    static let updateJSON = #"{"_id":{"$oid":"663881d9a1b2c3d4e5f60718"},"name":"Widget","qty":4,"tags":["a","c"]}"#
    static let replaceJSON = #"{"_id":{"$oid":"663881d9a1b2c3d4e5f60718"},"name":"Gadget","qty":1}"#
    static let tiers = TTLPolicy(base: 300, tiers: [
        TTLTier(minAccesses: 1000, ttl: 3600), TTLTier(minAccesses: 100, ttl: 1800), TTLTier(minAccesses: 10, ttl: 900),
    ])
    static let pattern = "app:products:*"

    static func products(_ strategy: StrategyKind, operations: Set<DocumentOperation>? = nil, maxValueBytes: Int = 1 << 20) -> CollectionConfig {
        CollectionConfig(database: "shop", collection: "products", strategy: strategy, operations: operations,
                         ttl: tiers, maxValueBytes: maxValueBytes)
    }

    static let table: [PlanCase] = [
        PlanCase(strategy: .invalidate, fixture: "insert", expected: [.skip(key: key, reason: .operationNotConfigured)]),
        PlanCase(strategy: .invalidate, fixture: "update", expected: [.delete(key: key, reason: .changed)]),
        PlanCase(strategy: .invalidate, fixture: "update-null-lookup", expected: [.delete(key: key, reason: .changed)]),
        PlanCase(strategy: .invalidate, fixture: "update-without-lookup", expected: [.delete(key: key, reason: .changed)]),
        PlanCase(strategy: .invalidate, fixture: "replace", expected: [.delete(key: key, reason: .changed)]),
        PlanCase(strategy: .invalidate, fixture: "delete", expected: [.delete(key: key, reason: .deleted)]),

        PlanCase(strategy: .update, fixture: "insert", expected: [.set(key: key, value: insertJSON, ttlSeconds: 1800)]),
        PlanCase(strategy: .update, fixture: "update", expected: [.set(key: key, value: updateJSON, ttlSeconds: 1800)]),
        PlanCase(strategy: .update, fixture: "update-null-lookup", expected: [.delete(key: key, reason: .nullFullDocument)]),
        PlanCase(strategy: .update, fixture: "update-without-lookup", expected: [.delete(key: key, reason: .fullDocumentAbsent)]),
        PlanCase(strategy: .update, fixture: "replace", expected: [.set(key: key, value: replaceJSON, ttlSeconds: 1800)]),
        PlanCase(strategy: .update, fixture: "delete", expected: [.delete(key: key, reason: .deleted)]),

        PlanCase(strategy: .preserveTTL, fixture: "insert", expected: [.set(key: key, value: insertJSON, ttlSeconds: 300)]),
        PlanCase(strategy: .preserveTTL, fixture: "update", expected: [.refresh(key: key, value: updateJSON)]),
        PlanCase(strategy: .preserveTTL, fixture: "update-null-lookup", expected: [.delete(key: key, reason: .nullFullDocument)]),
        PlanCase(strategy: .preserveTTL, fixture: "update-without-lookup", expected: [.delete(key: key, reason: .fullDocumentAbsent)]),
        PlanCase(strategy: .preserveTTL, fixture: "replace", expected: [.refresh(key: key, value: replaceJSON)]),
        PlanCase(strategy: .preserveTTL, fixture: "delete", expected: [.delete(key: key, reason: .deleted)]),
    ]

    @Test("each strategy × operation × fullDocument state plans the docs/ARCHITECTURE.md §4 ops", arguments: table)
    func designTable(_ row: PlanCase) throws {
        let event = try EventFixture.event(row.fixture)
        let ops = Strategy.plan(event: event, collection: Self.products(row.strategy), keyPrefix: "app:", accessCount: 150)
        #expect(ops == row.expected)
    }

    @Test("drop, rename and dropDatabase flush the collection under every strategy", arguments: StrategyKind.allCases)
    func collectionLevel(_ strategy: StrategyKind) throws {
        let collection = Self.products(strategy)
        let expectations: [(String, CacheOp.FlushReason)] = [("drop", .drop), ("rename", .rename), ("dropDatabase", .dropDatabase)]
        for (fixture, reason) in expectations {
            let ops = Strategy.plan(event: try EventFixture.event(fixture), collection: collection, keyPrefix: "app:", accessCount: 0)
            #expect(ops == [.flushCollection(namespace: "shop.products", pattern: Self.pattern, reason: reason)], "\(fixture)")
        }
    }

    @Test("invalidate and unknown events plan nothing under every strategy", arguments: StrategyKind.allCases)
    func nothingToDo(_ strategy: StrategyKind) throws {
        for fixture in ["invalidate", "createIndexes"] {
            let ops = Strategy.plan(event: try EventFixture.event(fixture), collection: Self.products(strategy), keyPrefix: "app:", accessCount: 0)
            #expect(ops.isEmpty, "\(fixture)")
        }
    }

    @Test("the operations list overrides the defaults: listed ones act, others are skipped")
    func operationsOverride() throws {
        let invalidateInserts = Self.products(.invalidate, operations: [.insert, .delete])
        #expect(Strategy.plan(event: try EventFixture.event("insert"), collection: invalidateInserts, keyPrefix: "app:", accessCount: 0)
                == [.delete(key: Self.key, reason: .changed)])
        #expect(Strategy.plan(event: try EventFixture.event("update"), collection: invalidateInserts, keyPrefix: "app:", accessCount: 0)
                == [.skip(key: Self.key, reason: .operationNotConfigured)])

        let updateDeletesOnly = Self.products(.update, operations: [.delete])
        #expect(Strategy.plan(event: try EventFixture.event("replace"), collection: updateDeletesOnly, keyPrefix: "app:", accessCount: 0)
                == [.skip(key: Self.key, reason: .operationNotConfigured)])
        #expect(Strategy.plan(event: try EventFixture.event("delete"), collection: updateDeletesOnly, keyPrefix: "app:", accessCount: 0)
                == [.delete(key: Self.key, reason: .deleted)])
    }

    @Test("the update strategy's TTL follows the access-count tiers", arguments: [
        (0, 300), (9, 300), (10, 900), (99, 900), (100, 1800), (999, 1800), (1000, 3600), (50_000, 3600),
    ])
    func adaptiveTTL(accesses: Int, ttl: Int) throws {
        let ops = Strategy.plan(event: try EventFixture.event("replace"), collection: Self.products(.update), keyPrefix: "app:", accessCount: accesses)
        #expect(ops == [.set(key: Self.key, value: Self.replaceJSON, ttlSeconds: ttl)])
    }

    @Test("preserve-ttl inserts use the base TTL whatever the access count")
    func preserveTTLInsertIgnoresTiers() throws {
        let ops = Strategy.plan(event: try EventFixture.event("insert"), collection: Self.products(.preserveTTL), keyPrefix: "app:", accessCount: 5000)
        #expect(ops == [.set(key: Self.key, value: Self.insertJSON, ttlSeconds: 300)])
    }

    @Test("a 16 MB document is planned as delete(tooLarge) without crashing")
    func hugeDocument() throws {
        let big = String(repeating: "x", count: 16 * 1024 * 1024)
        let id = BSONValue.objectId(ObjectID(hex: "663881d9a1b2c3d4e5f60718")!)
        let event = ChangeEvent(resumeToken: ["_data": .string("82")], operationType: .replace,
                                documentKey: ["_id": id], fullDocument: .document(EncodedBSONDocument(["_id": id, "blob": .string(big)])))
        for strategy in [StrategyKind.update, .preserveTTL] {
            let ops = Strategy.plan(event: event, collection: Self.products(strategy), keyPrefix: "app:", accessCount: 0)
            #expect(ops == [.delete(key: Self.key, reason: .tooLarge)], "\(strategy)")
        }
    }

    @Test("a collection acts on exactly its operations, also after they are changed")
    func actsOnOperations() {
        var config = Self.products(.invalidate)
        for operations: Set<DocumentOperation> in [config.operations, [.insert], [], Set(DocumentOperation.allCases)] {
            config.operations = operations
            for operation in DocumentOperation.allCases {
                #expect(config.actsOn(operation) == operations.contains(operation), "\(operation) in \(operations)")
            }
        }
    }

    @Test("a fullDocument that is not valid BSON deletes the key under every strategy")
    func invalidDocument() throws {
        var event = try EventFixture.document("replace")
        event["fullDocument"] = .document(["_id": .objectId(ObjectID(hex: "663881d9a1b2c3d4e5f60718")!), "a": .string("xyz")])
        var bytes = event.bsonBytes()
        let string: [UInt8] = [0x02, UInt8(ascii: "a"), 0, 4, 0, 0, 0]
        let at = try #require((0...bytes.count - string.count).first { bytes[$0..<$0 + string.count].elementsEqual(string) })
        bytes[at + 3] = 40
        let broken = try ChangeEvent(bsonBytes: bytes, decoding: .forApplying)
        let expected: [StrategyKind: CacheOp] = [
            .invalidate: .delete(key: Self.key, reason: .changed),
            .update: .delete(key: Self.key, reason: .invalidDocument),
            .preserveTTL: .delete(key: Self.key, reason: .invalidDocument),
        ]
        for (strategy, op) in expected {
            #expect(Strategy.plan(event: broken, collection: Self.products(strategy), keyPrefix: "app:", accessCount: 0) == [op],
                    "\(strategy)")
        }
    }

    @Test("a document whose JSON is exactly maxValueBytes is cached, one byte more is not")
    func maxValueBytesBoundary() throws {
        let event = try EventFixture.event("replace")
        let size = Self.replaceJSON.utf8.count
        #expect(Strategy.plan(event: event, collection: Self.products(.update, maxValueBytes: size), keyPrefix: "app:", accessCount: 0)
                == [.set(key: Self.key, value: Self.replaceJSON, ttlSeconds: 300)])
        #expect(Strategy.plan(event: event, collection: Self.products(.update, maxValueBytes: size - 1), keyPrefix: "app:", accessCount: 0)
                == [.delete(key: Self.key, reason: .tooLarge)])
    }

    @Test("a sharded event is keyed by _id only, and nx-27017 string ids key as themselves")
    func keysFromEvents() throws {
        let sharded = Strategy.plan(event: try EventFixture.event("sharded-update"),
                                    collection: CollectionConfig(database: "shop", collection: "customers", strategy: .invalidate),
                                    keyPrefix: "", accessCount: 0)
        #expect(sharded == [.delete(key: CacheKey(text: "customers:663881e2a1b2c3d4e5f60719"), reason: .changed)])

        let sessions = CollectionConfig(database: "shop", collection: "sessions", strategy: .preserveTTL, keyTemplate: "{db}:{coll}:{id}")
        let nxUpdate = Strategy.plan(event: try EventFixture.event("nx-replace-as-update"), collection: sessions, keyPrefix: "", accessCount: 0)
        #expect(nxUpdate == [.refresh(key: CacheKey(text: "shop:sessions:42"), value: #"{"_id":"42","user":"ann","active":true}"#)])
        let nxDelete = Strategy.plan(event: try EventFixture.event("nx-delete-with-document"), collection: sessions, keyPrefix: "", accessCount: 0)
        #expect(nxDelete == [.delete(key: CacheKey(text: "shop:sessions:42"), reason: .deleted)])
    }

    @Test("only update-strategy writes take their TTL from the access count")
    func ttlFollowsAccessCount() throws {
        let insert = try EventFixture.event("insert")
        func follows(_ event: ChangeEvent, _ collection: CollectionConfig) -> [Bool] {
            Strategy.plan(event: event, collection: collection, keyPrefix: "app:", accessCount: 0)
                .map { Strategy.ttlFollowsAccessCount($0, collection: collection) }
        }
        #expect(follows(insert, Self.products(.update)) == [true])
        #expect(follows(insert, Self.products(.preserveTTL)) == [false])
        #expect(follows(try EventFixture.event("delete"), Self.products(.update)) == [false])
        #expect(follows(try EventFixture.event("drop"), Self.products(.update)) == [false])
    }

    @Test("an op planned before the access count is known, given the count, is the op planned with it", arguments: [
        (StrategyKind.update, "replace"), (.update, "insert"), (.update, "delete"), (.preserveTTL, "insert"),
        (.preserveTTL, "update"), (.invalidate, "update"),
    ])
    func withAccessCount(strategy: StrategyKind, fixture: String) throws {
        let event = try EventFixture.event(fixture)
        let collection = Self.products(strategy)
        for accesses in [0, 10, 100, 1000, 50_000] {
            let early = Strategy.plan(event: event, collection: collection, keyPrefix: "app:", accessCount: 0)
            #expect(early.map { Strategy.withAccessCount(accesses, $0, collection: collection) }
                    == Strategy.plan(event: event, collection: collection, keyPrefix: "app:", accessCount: accesses))
        }
    }

    @Test("metric actions and keys of ops")
    func opAccessors() {
        #expect(CacheOp.refresh(key: Self.key, value: "{}").metricAction == "set")
        #expect(CacheOp.delete(key: Self.key, reason: .tooLarge).metricAction == "delete")
        #expect(CacheOp.skip(key: Self.key, reason: .operationNotConfigured).metricAction == "skip")
        #expect(CacheOp.flushCollection(namespace: "a.b", pattern: "*", reason: .drop).key == nil)
        #expect(CacheOp.set(key: Self.key, value: "{}", ttlSeconds: 1).key == Self.key)
    }
}
