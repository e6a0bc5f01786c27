import BSONModel
import Foundation
import Testing
@testable import CacheSyncCore

/// Loads the change-event fixtures (canonical Extended JSON in the real MongoDB format).
enum EventFixture {
    /// The raw BSON document of `Fixtures/events/<name>.json`.
    static func document(_ name: String) throws -> BSONDocument {
        let url = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("events/\(name).json")
        return try ExtendedJSONReader.document(String(contentsOf: url, encoding: .utf8))
    }

    /// The name of every fixture under `Fixtures/events/`, sorted.
    static func names() throws -> [String] {
        let folder = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).appendingPathComponent("events")
        return try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The decoded event of `Fixtures/events/<name>.json`, decoded from its bytes as the pipeline does.
    static func event(_ name: String) throws -> ChangeEvent {
        try ChangeEvent(bsonBytes: document(name).bsonBytes())
    }
}

@Suite("ChangeEvent decoding")
struct ChangeEventTests {
    let productID = BSONValue.objectId(ObjectID(hex: "663881d9a1b2c3d4e5f60718")!)

    @Test("an insert event yields token, times, namespace, key and the full document in order")
    func insert() throws {
        let event = try EventFixture.event("insert")
        #expect(event.operationType == .insert)
        #expect(event.resumeToken.keys == ["_data"])
        guard case .string(let data)? = event.resumeToken["_data"] else {
            Issue.record("resume token has no _data string")
            return
        }
        #expect(data.hasPrefix("82663881D9"))
        #expect(event.clusterTime == .timestamp(seconds: 1_714_979_289, increment: 1))
        #expect(event.wallTime == 1_714_979_289_123)
        #expect(event.eventTimeSeconds == 1_714_979_289.123)
        #expect(event.namespace == .init(database: "shop", collection: "products"))
        #expect(event.documentID == productID)
        guard case .document(let encoded) = event.fullDocument else {
            Issue.record("insert has no full document")
            return
        }
        let doc = try encoded.decoded()
        #expect(doc.keys == ["_id", "name", "price", "qty", "views", "rating", "weight", "tags", "updatedAt"])
        #expect(doc["qty"] == .int32(5))
        #expect(doc["views"] == .int64(9_007_199_254_740_993))
        #expect(doc["weight"] == .double(2.0))
    }

    @Test("an update event carries its updateDescription")
    func update() throws {
        let event = try EventFixture.event("update")
        #expect(event.operationType == .update)
        let description = try #require(event.updateDescription)
        #expect(description.updatedFields.keys == ["qty", "tags.1"])
        #expect(description.updatedFields["qty"] == .int32(4))
        #expect(description.removedFields == ["discount"])
        #expect(description.truncatedArrays == [ChangeEvent.TruncatedArray(field: "history", newSize: 2)])
        #expect(description.disambiguatedPaths.isEmpty)
        guard case .document(let encoded) = event.fullDocument else {
            Issue.record("updateLookup document missing")
            return
        }
        let doc = try encoded.decoded()
        #expect(doc["qty"] == .int32(4))
    }

    @Test("fullDocument is absent without updateLookup and null when the lookup found nothing")
    func fullDocumentStates() throws {
        #expect(try EventFixture.event("update-without-lookup").fullDocument == .absent)
        #expect(try EventFixture.event("update-null-lookup").fullDocument == .null)
        #expect(try EventFixture.event("replace").operationType == .replace)
    }

    @Test("a delete has a key and no document")
    func delete() throws {
        let event = try EventFixture.event("delete")
        #expect(event.operationType == .delete)
        #expect(event.documentID == productID)
        #expect(event.fullDocument == .absent)
    }

    @Test("drop, rename, dropDatabase and invalidate decode with their namespaces")
    func collectionEvents() throws {
        let drop = try EventFixture.event("drop")
        #expect(drop.operationType == .drop)
        #expect(drop.namespace == .init(database: "shop", collection: "products"))
        #expect(drop.documentKey == nil)

        let rename = try EventFixture.event("rename")
        #expect(rename.operationType == .rename)
        #expect(rename.renamedTo == .init(database: "shop", collection: "products_archive"))

        let dropDatabase = try EventFixture.event("dropDatabase")
        #expect(dropDatabase.operationType == .dropDatabase)
        #expect(dropDatabase.namespace == .init(database: "shop", collection: nil))

        let invalidate = try EventFixture.event("invalidate")
        #expect(invalidate.operationType == .invalidate)
        #expect(invalidate.namespace == nil)
    }

    @Test("a sharded documentKey keeps the shard key and still yields _id")
    func sharded() throws {
        let event = try EventFixture.event("sharded-update")
        #expect(event.documentKey?.keys == ["country", "_id"])
        #expect(event.documentKey?["country"] == .string("DE"))
        #expect(event.documentID == .objectId(ObjectID(hex: "663881e2a1b2c3d4e5f60719")!))
        #expect(event.updateDescription?.disambiguatedPaths["a.0"] == .array([.string("a"), .string("0")]))
    }

    @Test("an unknown operation type is kept by name, not rejected")
    func unknown() throws {
        let event = try EventFixture.event("createIndexes")
        #expect(event.operationType == .unknown("createIndexes"))
        #expect(event.operationType.description == "createIndexes")
        #expect(event.operationType.documentOperation == nil)
    }

    @Test("nx-27017 deviations: date clusterTime, null updateDescription, string _id, delete with a document")
    func nxDeviations() throws {
        let update = try EventFixture.event("nx-replace-as-update")
        #expect(update.resumeToken == ["_data": .string("nx:7")])
        #expect(update.clusterTime == .date(1_714_979_289_123))
        #expect(update.eventTimeSeconds == 1_714_979_289.123)
        #expect(update.documentID == .string("42"))
        #expect(update.updateDescription == nil)

        let delete = try EventFixture.event("nx-delete-with-document")
        #expect(delete.operationType == .delete)
        #expect(delete.fullDocument == .absent)
    }

    @Test("decoding from BSON bytes, fullDocument left encoded, gives the same event as from the decoded document")
    func fromBSONBytes() throws {
        let names = try EventFixture.names()
        #expect(names.count >= 14)
        for name in names {
            let document = try EventFixture.document(name)
            let fromBytes = try ChangeEvent(bsonBytes: document.bsonBytes())
            #expect(fromBytes == (try ChangeEvent(bson: document)), "fixture \(name)")
            if case .document(let full)? = document["fullDocument"], fromBytes.operationType != .delete {
                #expect(fromBytes.fullDocument == .document(EncodedBSONDocument(full)), "fixture \(name)")
            }
        }
    }

    @Test("decoding for applying gives the full event without namespace and updateDescription")
    func forApplying() throws {
        for name in try EventFixture.names() {
            let bytes = try EventFixture.document(name).bsonBytes()
            var full = try ChangeEvent(bsonBytes: bytes)
            if name == "update" { #expect(full.updateDescription != nil && full.namespace != nil) }
            full.namespace = nil
            full.updateDescription = nil
            #expect(try ChangeEvent(bsonBytes: bytes, decoding: .forApplying) == full, "fixture \(name)")
        }
        // The variants nx-27017 and other servers send decode the same way for applying.
        let variants: [(field: String, value: BSONValue)] = [
            ("wallTime", .null), ("clusterTime", .datetime(1_714_979_290_456)), ("fullDocument", .null),
            ("operationType", .string("modify")), ("operationType", .string("delete")), ("lsid", .document(["id": .int32(1)])),
        ]
        for (field, value) in variants {
            var event = try EventFixture.document("update")
            event[field] = value
            var full = try ChangeEvent(bsonBytes: event.bsonBytes())
            (full.namespace, full.updateDescription) = (nil, nil)
            #expect(try ChangeEvent(bsonBytes: event.bsonBytes(), decoding: .forApplying) == full, "\(field): \(value)")
        }
        // A mistyped field the applier does not read fails the full decoding only, and so does broken BSON inside
        // it: applying skips it by its length. A length past the event fails both.
        var event = try EventFixture.document("update")
        event["updateDescription"] = .document(["removedFields": .string("a")])
        #expect(throws: ChangeEventError.self) { try ChangeEvent(bsonBytes: event.bsonBytes()) }
        #expect(try ChangeEvent(bsonBytes: event.bsonBytes(), decoding: .forApplying).operationType == .update)
        event["updateDescription"] = .document(["updatedFields": .document(["a": .string("xyz")])])
        var corrupt = event.bsonBytes()
        let at = try Self.offset(of: [0x02, UInt8(ascii: "a"), 0, 4, 0, 0, 0], in: corrupt)
        corrupt[at + 6] = 0x7f
        #expect(throws: BSONDecodingError.self) { try ChangeEvent(bsonBytes: corrupt) }
        #expect(try ChangeEvent(bsonBytes: corrupt, decoding: .forApplying).updateDescription == nil)
        let description = try Self.offset(of: Array("updateDescription".utf8) + [0], in: corrupt) + 18
        corrupt[description + 1] = 0x7f
        #expect(throws: BSONDecodingError.self) { try ChangeEvent(bsonBytes: corrupt, decoding: .forApplying) }
    }

    @Test("a decoded event's documents share the decoded bytes, however the event is decoded")
    func documentsShareTheBytes() throws {
        func shares(_ document: EncodedBSONDocument?, _ bytes: [UInt8]) -> Bool {
            guard let storage = document?.buffer.storage else { return false }
            return storage.withUnsafeBufferPointer { own in bytes.withUnsafeBufferPointer { $0.baseAddress == own.baseAddress } }
        }
        let bytes = try EventFixture.document("update").bsonBytes()
        for decoding in [ChangeEvent.Decoding.all, .forApplying] {
            let event = try ChangeEvent(bsonBytes: bytes, decoding: decoding)
            #expect(shares(event.encodedResumeToken, bytes), "\(decoding)")
            #expect(shares(event.encodedDocumentKey, bytes), "\(decoding)")
            guard case .document(let after) = event.fullDocument else { Issue.record("no fullDocument"); continue }
            #expect(shares(after, bytes), "\(decoding)")
        }
    }

    @Test("a decoded event's documents can be replaced one by one, leaving its copies as they were")
    func replacingDocuments() throws {
        let decoded = try ChangeEvent(bsonBytes: EventFixture.document("update").bsonBytes(), decoding: .forApplying)
        let token: BSONDocument = ["_data": .string("8200")]
        let key: BSONDocument = ["_id": .int32(42), "region": .string("eu")]
        let after: BSONDocument = ["_id": .int32(42), "n": .double(1.5)]
        var changed = decoded
        changed.resumeToken = token
        changed.documentKey = key
        changed.fullDocument = .document(EncodedBSONDocument(after))
        #expect(changed.resumeToken == token && changed.documentKey == key && changed.documentID == .int32(42))
        #expect(changed.fullDocument == .document(EncodedBSONDocument(after)))
        #expect(changed == ChangeEvent(resumeToken: token, operationType: .update, clusterTime: decoded.clusterTime,
                                       wallTime: decoded.wallTime, documentKey: key,
                                       fullDocument: .document(EncodedBSONDocument(after))))
        #expect(decoded == (try ChangeEvent(bsonBytes: EventFixture.document("update").bsonBytes(), decoding: .forApplying)))
        #expect(decoded.documentID == productID && decoded != changed)
        changed.documentKey = nil
        changed.fullDocument = .null
        #expect(changed.documentID == nil && changed.encodedDocumentKey == nil && changed.fullDocument == .null)
    }

    @Test("a copy of an event keeps every field when the original changes, and the other way round")
    func copiesStayApart() throws {
        let original = try ChangeEvent(bson: EventFixture.document("update"))
        let fixture = original
        var changed = original
        changed.operationType = .replace
        changed.clusterTime = .date(1)
        changed.wallTime = 2
        changed.namespace = ChangeEvent.Namespace(database: "other", collection: nil)
        changed.renamedTo = ChangeEvent.Namespace(database: "to", collection: "c")
        changed.updateDescription = nil
        let decodedAgain = try ChangeEvent(bson: EventFixture.document("update"))
        #expect(original == fixture && original == decodedAgain)
        #expect(original.operationType == .update && original.namespace?.database != "other" && original.renamedTo == nil)
        #expect(original.updateDescription != nil && original.wallTime != 2)
        #expect(changed.operationType == .replace && changed.clusterTime == .date(1) && changed.wallTime == 2)
        #expect(changed.namespace == ChangeEvent.Namespace(database: "other", collection: nil))
        #expect(changed.renamedTo?.collection == "c" && changed.updateDescription == nil)
        var copy = changed
        copy.wallTime = 3
        #expect(changed.wallTime == 2 && copy.wallTime == 3 && copy.renamedTo == changed.renamedTo)
    }

    @Test("decoding for applying keeps a fullDocument whose elements are broken; writing its JSON finds it invalid")
    func forApplyingBrokenFullDocument() throws {
        var event = try EventFixture.document("insert")
        event["fullDocument"] = .document(["_id": .int32(1), "a": .string("xyz")])
        var corrupt = event.bsonBytes()
        corrupt[try Self.offset(of: [0x02, UInt8(ascii: "a"), 0, 4, 0, 0, 0], in: corrupt) + 3] = 40
        #expect(throws: BSONDecodingError.self) { try ChangeEvent(bsonBytes: corrupt) }
        let applied = try ChangeEvent(bsonBytes: corrupt, decoding: .forApplying)
        guard case .document(let document) = applied.fullDocument else {
            Issue.record("the fullDocument was not kept")
            return
        }
        #expect(throws: BSONDecodingError.self) { try document.decoded() }
        guard case .invalid(let why) = ExtendedJSON.rendering(document, maxBytes: 1 << 20) else {
            Issue.record("a broken document rendered as JSON")
            return
        }
        #expect(why.contains("at byte"))
        // Its terminator gone, the document fails at decoding.
        let end = try Self.offset(of: Array("xyz".utf8) + [0, 0], in: corrupt) + 4
        corrupt[end] = 1
        #expect(throws: BSONDecodingError.self) { try ChangeEvent(bsonBytes: corrupt, decoding: .forApplying) }
    }

    /// Where `pattern` first occurs in `bytes`.
    static func offset(of pattern: [UInt8], in bytes: [UInt8]) throws -> Int {
        try #require((0...bytes.count - pattern.count).first { bytes[$0..<$0 + pattern.count].elementsEqual(pattern) })
    }

    /// `{"a": {"a": … {}}}`, `depth` documents deep, as BSON bytes (built without recursion).
    static func nested(depth: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for level in 0..<depth {
            withUnsafeBytes(of: Int32(5 + 8 * (depth - 1 - level)).littleEndian) { bytes += $0 }
            if level < depth - 1 { bytes += [0x03, UInt8(ascii: "a"), 0] }
        }
        return bytes + [UInt8](repeating: 0, count: depth)
    }

    @Test("a document nested deeper than BSONReader.maxDepth is invalid, not read until the stack overflows")
    func nestedTooDeep() throws {
        #expect(try BSONDocument(bsonBytes: Self.nested(depth: BSONReader.maxDepth)).keys == ["a"])
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bsonBytes: Self.nested(depth: BSONReader.maxDepth + 1)) }
        // 10,000 levels overflowed the stack of the bson fuzz target, in decoding and in writing JSON.
        let deep = Self.nested(depth: 100_000)
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bsonBytes: deep) }
        // As an insert's fullDocument: decoding for applying keeps it unread, and the update strategy deletes the key.
        var event = try EventFixture.document("insert")
        event["fullDocument"] = .document([:])
        var bytes = event.bsonBytes()
        let at = try Self.offset(of: Array("fullDocument".utf8) + [0, 5, 0, 0, 0, 0], in: bytes) + 13
        bytes.replaceSubrange(at..<at + 5, with: deep)
        withUnsafeBytes(of: Int32(bytes.count).littleEndian) { bytes.replaceSubrange(0..<4, with: $0) }
        #expect(throws: BSONDecodingError.self) { try ChangeEvent(bsonBytes: bytes) }
        let applied = try ChangeEvent(bsonBytes: bytes, decoding: .forApplying)
        let ops = Strategy.plan(event: applied, collection: CollectionConfig(database: "shop", collection: "products", strategy: .update),
                                keyPrefix: "", accessCount: 0)
        guard ops.count == 1, case .delete(_, .invalidDocument) = ops[0] else {
            Issue.record("planned \(ops)")
            return
        }
    }

    @Test("from bytes, fields the model does not read are skipped and the first of a repeated field wins")
    func fromBytesSkipsAndKeepsFirst() throws {
        var event = try EventFixture.document("update")
        event.fields.insert((key: "lsid", value: .document(["id": .binary(subtype: 4, data: Array(repeating: 7, count: 16))])), at: 1)
        event.fields.append((key: "txnNumber", value: .int64(3)))
        event.fields.append((key: "fullDocument", value: .null))
        event.fields.append((key: "operationType", value: .string("delete")))
        let fromBytes = try ChangeEvent(bsonBytes: event.bsonBytes())
        #expect(fromBytes == (try ChangeEvent(bson: event)))
        #expect(fromBytes.operationType == .update)
        var applied = fromBytes
        (applied.namespace, applied.updateDescription) = (nil, nil)
        #expect(try ChangeEvent(bsonBytes: event.bsonBytes(), decoding: .forApplying) == applied)
        guard case .document(let full) = fromBytes.fullDocument else {
            Issue.record("the first fullDocument, a document, was not kept")
            return
        }
        #expect(try full.decoded()["qty"] == .int32(4))
    }

    @Test("a truncated or mistyped fullDocument fails decoding from bytes with a clear error")
    func fromBadBytes() throws {
        var bytes = try EventFixture.document("insert").bsonBytes()
        bytes.removeLast(3)
        #expect(throws: BSONDecodingError.self) { try ChangeEvent(bsonBytes: bytes) }
        var event = try EventFixture.document("insert")
        event["fullDocument"] = .string("not a document")
        #expect(throws: ChangeEventError.wrongType("fullDocument", expected: "document or null", found: "string",
                                                   operationType: "insert")) {
            try ChangeEvent(bsonBytes: event.bsonBytes())
        }
        // The lengths around fullDocument hold, but a string inside it claims more bytes than it has.
        event["fullDocument"] = .document(["_id": .int32(1), "a": .string("xyz")])
        var corrupt = event.bsonBytes()
        let string: [UInt8] = [0x02, UInt8(ascii: "a"), 0, 4, 0, 0, 0]
        let at = try #require((0...corrupt.count - string.count).first { corrupt[$0..<$0 + string.count].elementsEqual(string) })
        corrupt[at + 3] = 40
        #expect(throws: BSONDecodingError.self) { try ChangeEvent(bsonBytes: corrupt) }
    }

    @Test("malformed events give typed errors naming the missing or mistyped field, the same from a tree and from bytes")
    func malformed() throws {
        #expect(ChangeEventError.missingField("documentKey", operationType: "update").description
                == "update event: missing field documentKey")
        func changed(_ fixture: String, _ field: String, _ value: BSONValue?) throws -> BSONDocument {
            var event = try EventFixture.document(fixture)
            event[field] = value
            return event
        }
        let cases: [(event: BSONDocument, error: ChangeEventError)] = [
            (try changed("update", "documentKey", nil), .missingField("documentKey", operationType: "update")),
            (try changed("update", "documentKey", .document(["country": .string("DE")])),
             .missingField("documentKey._id", operationType: "update")),
            (try changed("update", "documentKey", .string("x")),
             .wrongType("documentKey", expected: "document", found: "string", operationType: "update")),
            ([:], .missingField("operationType", operationType: nil)),
            (try changed("insert", "operationType", .int32(1)),
             .wrongType("operationType", expected: "string", found: "int", operationType: nil)),
            (try changed("rename", "to", nil), .missingField("to", operationType: "rename")),
            (try changed("insert", "clusterTime", .string("yesterday")),
             .wrongType("clusterTime", expected: "timestamp or date", found: "string", operationType: "insert")),
            (try changed("insert", "wallTime", .int64(5)),
             .wrongType("wallTime", expected: "date", found: "long", operationType: "insert")),
            (try changed("insert", "fullDocument", .int32(1)),
             .wrongType("fullDocument", expected: "document or null", found: "int", operationType: "insert")),
            (try changed("insert", "_id", nil), .missingField("_id (resume token)", operationType: "insert")),
            (try changed("insert", "_id", .string("t")),
             .wrongType("_id (resume token)", expected: "document", found: "string", operationType: "insert")),
        ]
        for (event, error) in cases {
            #expect(throws: error) { try ChangeEvent(bson: event) }
            #expect(throws: error) { try ChangeEvent(bsonBytes: event.bsonBytes()) }
            #expect(throws: error) { try ChangeEvent(bsonBytes: event.bsonBytes(), decoding: .forApplying) }
        }

        let update = try changed("update", "updateDescription", .document(["removedFields": .array([.int32(1)])]))
        #expect(throws: ChangeEventError.self) { try ChangeEvent(bson: update) }
        #expect(try ChangeEvent(bsonBytes: update.bsonBytes(), decoding: .forApplying).updateDescription == nil)
    }

    @Test("operation types are read from their bytes; an unknown one keeps its name")
    func operationTypes() throws {
        for name in ["insert", "update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate"] {
            #expect(ChangeEvent.OperationType(name).description == name)
            #expect(ChangeEvent.OperationType(name) != .unknown(name))
        }
        #expect(ChangeEvent.OperationType("createIndexes") == .unknown("createIndexes"))
        #expect(ChangeEvent.OperationType("") == .unknown(""))
        #expect(ChangeEvent.OperationType("inserts") == .unknown("inserts"))
        let event = try changedOperationType("modify")
        #expect(try ChangeEvent(bsonBytes: event.bsonBytes(), decoding: .forApplying).operationType == .unknown("modify"))
    }

    private func changedOperationType(_ name: String) throws -> BSONDocument {
        var event = try EventFixture.document("insert")
        event["operationType"] = .string(name)
        return event
    }
}
