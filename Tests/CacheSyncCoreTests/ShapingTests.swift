import BSONModel
import CacheSyncCore
import Testing

@Suite("Shaping what is cached: project and filter")
struct ShapingTests {
    static let user: BSONDocument = [
        "_id": .int32(7), "name": .string("Ada"), "passwordHash": .string("$2b$..."),
        "address": .document(["city": .string("Oslo"), "zip": .string("0150")]),
        "mfa": .document(["secret": .string("s"), "on": .bool(true)]),
        "tags": .array([.string("a"), .string("b")]), "age": .int32(36), "status": .string("active"),
        "orders": .array([.document(["sku": .string("x"), "n": .int32(2)]), .document(["sku": .string("y"), "n": .int32(5)])]),
    ]

    func parse(_ collection: String) throws -> CollectionConfig {
        try ConfigLoader.parse(text: """
            mongodb: { uri: "mongodb://db:27017", database: shop }
            redis: { url: "redis://cache:6379/0" }
            collections:
              users:
            \(collection)
            """, path: "shape.yaml").collections[0]
    }

    @Test func exclusionRemovesFieldsAtAnyDepth() throws {
        let projection = try #require(try parse("    strategy: update\n    project: { passwordHash: 0, \"mfa.secret\": 0 }").projection)
        let out = projection.apply(Self.user)
        #expect(out["passwordHash"] == nil)
        #expect(out["mfa"] == .document(["on": .bool(true)]))
        #expect(out["_id"] == .int32(7) && out["name"] == .string("Ada"))
        #expect(projection.changeStreamStage == ["$project": .document(["fullDocument.passwordHash": .int32(0),
                                                                        "fullDocument.mfa.secret": .int32(0)])])
    }

    @Test func inclusionKeepsOnlyTheListedFieldsAndTheID() throws {
        let projection = try #require(try parse("    strategy: update\n    project: { name: 1, \"address.city\": 1, \"orders.sku\": 1 }").projection)
        let out = projection.apply(Self.user)
        #expect(out.keys == ["_id", "name", "address", "orders"])
        #expect(out["address"] == .document(["city": .string("Oslo")]))
        #expect(out["orders"] == .array([.document(["sku": .string("x")]), .document(["sku": .string("y")])]))
        #expect(projection.changeStreamStage == nil, "an inclusion cannot be pushed into a change stream with $project")
    }

    @Test func exclusionOnTheEncodedBytesGivesTheSameDocument() throws {
        let nested: BSONDocument = ["_id": .int32(1), "grid": .array([.array([.document(["x": .int32(1), "y": .int32(2)])]), .int32(3)]),
                                    "deep": .document(["a": .document(["b": .int32(1), "c": .int32(2)]), "d": .null])]
        for text in ["{ passwordHash: 0 }", "{ passwordHash: 0, \"mfa.secret\": 0 }", "{ \"orders.sku\": 0, tags: 0 }",
                     "{ \"address.city\": 0, \"address.zip\": 0 }", "{ \"age.x\": 0, \"grid.x\": 0, \"deep.a.b\": 0 }",
                     "{ nothing: 0 }"] {
            let projection = try #require(try parse("    strategy: update\n    project: \(text)").projection)
            for document in [Self.user, nested] {
                let bytes = try #require(projection.apply(EncodedBSONDocument(document)))
                #expect(try bytes.decoded() == projection.apply(document), "\(text)")
                #expect(bytes == EncodedBSONDocument(projection.apply(document)), "\(text): the same bytes")
            }
        }
        let inclusion = try #require(try parse("    strategy: update\n    project: { name: 1 }").projection)
        #expect(inclusion.apply(EncodedBSONDocument(Self.user)) == nil, "an inclusion is applied decoded")
        let filter = try #require(try parse("    strategy: update\n    filter: { \"address.city\": Oslo, age: { $gt: 30 } }").filter)
        #expect(filter.matches(EncodedBSONDocument(Self.user)) && filter.matches(Self.user))
    }

    @Test func filterOperators() throws {
        func matches(_ filter: String) throws -> Bool {
            try #require(try parse("    strategy: update\n    filter: \(filter)").filter).matches(Self.user)
        }
        #expect(try matches("{ status: active }"))
        #expect(try !matches("{ status: gone }"))
        #expect(try matches("{ age: { $gte: 18, $lt: 40 } }"))
        #expect(try matches("{ age: 36.0 }"), "numbers compare by value across types")
        #expect(try !matches("{ age: { $gt: \"10\" } }"), "no range across types")
        #expect(try matches("{ tags: b }"), "an array matches when an element does")
        #expect(try matches("{ \"address.city\": { $in: [Bergen, Oslo] } }"))
        #expect(try matches("{ \"orders.n\": { $gt: 4 } }"), "a path through an array of documents")
        #expect(try matches("{ missing: null, deleted: { $exists: false }, name: { $exists: true } }"))
        #expect(try matches("{ status: { $nin: [banned] }, name: { $ne: Bob } }"))
        #expect(try matches("{ $or: [ { status: gone }, { age: 36 } ] }"))
        #expect(try !matches("{ $and: [ { status: active }, { age: { $lt: 30 } } ] }"))
    }

    @Test func plannerDeletesWhatLeavesTheFilterAndCachesTheProjection() throws {
        let collection = try parse("    strategy: update\n    project: { passwordHash: 0 }\n    filter: { status: active }")
        func plan(_ document: BSONDocument) -> [CacheOp] {
            let event = ChangeEvent(resumeToken: ["_data": .string("01")], operationType: .update,
                                    documentKey: ["_id": .int32(7)], fullDocument: .document(EncodedBSONDocument(document)))
            return Strategy.plan(event: event, collection: collection, keyPrefix: "", accessCount: 0)
        }
        guard case .set(_, let json, _) = plan(Self.user).first else {
            Issue.record("a matching document is cached")
            return
        }
        #expect(!json.contains("passwordHash") && json.contains("\"name\":\"Ada\""))
        var inactive = Self.user
        inactive["status"] = .string("inactive")
        #expect(plan(inactive).first == .delete(key: CacheKey(text: "users:7"), reason: .filteredOut))
    }

    @Test("bad shaping config names file, line and field")
    func errors() throws {
        func error(_ collection: String) -> String {
            do {
                _ = try parse(collection)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(error("    strategy: update\n    filter: { name: { $regex: \"^A\" } }")
                == #"shape.yaml:6: collections.users.filter.name.$regex: unsupported operator "$regex" (a filter may use $eq, $ne, $in, $nin, $exists, $gt, $gte, $lt, $lte, $and, $or)"#)
        #expect(error("    strategy: invalidate\n    filter: { status: active }").hasPrefix(
            "shape.yaml:6: collections.users.filter: needs the full document, which strategy: invalidate never reads"))
        #expect(error("    strategy: update\n    project: { a: 1, b: 0 }").contains("mixes inclusion (1) and exclusion (0)"))
        #expect(error("    strategy: update\n    project: { _id: 0, a: 1 }").contains("cannot leave _id out"))
        #expect(error("    strategy: update\n    project: { a: 2 }").contains("expected 0 (leave the field out) or 1 (keep it)"))
    }

    @Test func checkConfigRendersShapingAndReadsItBack() throws {
        let text = """
            mongodb: { uri: "mongodb://db:27017", database: shop }
            redis: { url: "redis://cache:6379/0" }
            collections:
              users:
                strategy: update
                project: { passwordHash: 0, "mfa.secret": 0 }
                filter: { status: active, age: { $gte: 18 }, $or: [ { tier: gold }, { tags: { $in: [vip, 1.5] } } ] }
            """
        let config = try ConfigLoader.parse(text: text, path: "shape.yaml")
        let rendered = ConfigRenderer.render(config)
        #expect(rendered.contains(#"project: {"passwordHash":0,"mfa.secret":0}"#), "\(rendered)")
        let again = try ConfigLoader.parse(text: rendered, path: "again.yaml")
        #expect(again.collections == config.collections)
    }
}
