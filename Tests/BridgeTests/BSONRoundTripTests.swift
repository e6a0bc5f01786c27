import BSONModel
import CMongoc
import Foundation
import MongoBridge
import Testing

/// Builds a document through libbson's own append functions, so the Swift codec is checked against libbson.
private func libbsonDocument(_ build: (OpaquePointer) -> Void) -> [UInt8] {
    let doc = bson_new()!
    defer { bson_destroy(doc) }
    build(doc)
    var len: UInt32 = 0
    let data = cs_bson_data(doc, &len)!
    return Array(UnsafeBufferPointer(start: data, count: Int(len)))
}

@Suite("BSON codec against libbson")
struct BSONRoundTripTests {
    static let oidHex = "5f1d7a0b9c8e7d6f5a4b3c2d"
    static let uuidBytes: [UInt8] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]

    /// One document holding every type docs/ARCHITECTURE.md §4 names, built by libbson.
    static func everyTypeBytes() -> [UInt8] {
        libbsonDocument { doc in
            var oid = bson_oid_t()
            bson_oid_init_from_string(&oid, oidHex)
            bson_append_oid(doc, "oid", -1, &oid)
            bson_append_int32(doc, "i32", -1, -42)
            bson_append_int64(doc, "i64", -1, 9_007_199_254_740_993)
            bson_append_double(doc, "dbl", -1, 2.5)
            var dec = bson_decimal128_t()
            bson_decimal128_from_string("1234.5678E-2", &dec)
            bson_append_decimal128(doc, "dec", -1, &dec)
            _ = uuidBytes.withUnsafeBufferPointer { bson_append_binary(doc, "uuid", -1, BSON_SUBTYPE_UUID, $0.baseAddress, 16) }
            let other: [UInt8] = [0, 1, 2, 255]
            _ = other.withUnsafeBufferPointer { bson_append_binary(doc, "bin", -1, BSON_SUBTYPE_BINARY, $0.baseAddress, 4) }
            bson_append_date_time(doc, "date", -1, 1_714_979_289_123)
            bson_append_utf8(doc, "str", -1, "grüße, 世界 \"q\"", -1)
            let nested = bson_new()!
            bson_append_utf8(nested, "a", -1, "x", -1)
            bson_append_int32(nested, "b", -1, 1)
            bson_append_document(doc, "doc", -1, nested)
            bson_destroy(nested)
            let array = bson_new()!
            bson_append_int32(array, "0", -1, 1)
            bson_append_utf8(array, "1", -1, "two", -1)
            bson_append_array(doc, "arr", -1, array)
            bson_destroy(array)
            bson_append_timestamp(doc, "ts", -1, 1_700_000_000, 7)
            bson_append_bool(doc, "flag", -1, true)
            bson_append_null(doc, "nothing", -1)
            bson_append_regex(doc, "re", -1, "^a.*z$", "i")
            bson_append_minkey(doc, "min", -1)
            bson_append_maxkey(doc, "max", -1)
        }
    }

    @Test("libbson bytes decode to the expected Swift values")
    func decodesEveryType() throws {
        let doc = try BSONDocument(bsonBytes: Self.everyTypeBytes())
        #expect(doc["oid"] == .objectId(ObjectID(hex: Self.oidHex)!))
        #expect(doc["i32"] == .int32(-42))
        #expect(doc["i64"] == .int64(9_007_199_254_740_993))
        #expect(doc["dbl"] == .double(2.5))
        #expect(doc["uuid"] == .binary(subtype: 4, data: Self.uuidBytes))
        #expect(doc["bin"] == .binary(subtype: 0, data: [0, 1, 2, 255]))
        #expect(doc["date"] == .datetime(1_714_979_289_123))
        #expect(doc["str"] == .string("grüße, 世界 \"q\""))
        #expect(doc["doc"] == .document(["a": .string("x"), "b": .int32(1)]))
        #expect(doc["arr"] == .array([.int32(1), .string("two")]))
        #expect(doc["ts"] == .timestamp(seconds: 1_700_000_000, increment: 7))
        #expect(doc["flag"] == .bool(true))
        #expect(doc["nothing"] == .null)
        #expect(doc["re"] == .regex(pattern: "^a.*z$", options: "i"))
        #expect(doc["min"] == .minKey)
        #expect(doc["max"] == .maxKey)
        guard case .decimal128? = doc["dec"] else {
            Issue.record("dec is not a Decimal128: \(String(describing: doc["dec"]))")
            return
        }
        #expect(doc.keys == ["oid", "i32", "i64", "dbl", "dec", "uuid", "bin", "date", "str", "doc", "arr", "ts", "flag", "nothing", "re", "min", "max"])
    }

    @Test("Swift re-encoding gives libbson's exact bytes back")
    func reencodesByteForByte() throws {
        let bytes = Self.everyTypeBytes()
        #expect(try BSONDocument(bsonBytes: bytes).bsonBytes() == bytes)
    }

    @Test("a Swift-built document is read back by libbson with the same values")
    func libbsonReadsSwiftDocument() throws {
        let original = try BSONDocument(bsonBytes: Self.everyTypeBytes())
        let handle = BSONHandle(original)
        #expect(handle.bytes == original.bsonBytes())
        let canonical = handle.canonicalExtendedJSON
        #expect(canonical.contains("\"$oid\" : \"\(Self.oidHex)\""))
        #expect(canonical.contains("\"$numberDecimal\" : \"12.345678\""))
        #expect(canonical.contains("\"$numberLong\" : \"9007199254740993\""))
        #expect(canonical.contains("\"subType\" : \"04\""))
        #expect(try BSONDocument(extendedJSON: canonical) == original)
    }

    @Test("an encoded document's field is read without decoding the others: the first of its name, top level only")
    func encodedFieldLookup() throws {
        let document: BSONDocument = [
            "a": .document(["_id": .int32(1)]), "_id": .objectId(ObjectID(hex: Self.oidHex)!), "_id": .string("second"),
            "": .null, "é": .string("x"),
        ]
        let encoded = EncodedBSONDocument(document)
        #expect(encoded["_id"] == .objectId(ObjectID(hex: Self.oidHex)!))
        #expect(encoded["a"] == .document(["_id": .int32(1)]))
        #expect(encoded[""] == .null)
        #expect(encoded["é"] == .string("x"))
        #expect(encoded["_i"] == nil)
        #expect(encoded["missing"] == nil)
        let everyType = EncodedBSONDocument(try BSONDocument(bsonBytes: Self.everyTypeBytes()))
        let decoded = try everyType.decoded()
        for (key, _) in decoded.fields { #expect(everyType[key] == decoded[key]) }
    }

    @Test("a document shared from a larger buffer: only a range that holds a whole document (by its length and terminator) is taken")
    func sharedRange() {
        let inner: BSONDocument = ["k": .int32(7)]
        let innerBytes = inner.bsonBytes()
        let buffer = [0xAA, 0xBB] + innerBytes + [0xCC]
        let range = 2..<(2 + innerBytes.count)
        #expect(EncodedBSONDocument(sharing: buffer, range: range) == EncodedBSONDocument(inner))
        #expect(EncodedBSONDocument(sharing: buffer, range: range)?["k"] == .int32(7))
        for wrong in [1..<(1 + innerBytes.count), 2..<(1 + innerBytes.count), 3..<(3 + innerBytes.count),
                      2..<(2 + innerBytes.count + 1), 0..<3, (buffer.count - 2)..<(buffer.count + 3)] {
            #expect(EncodedBSONDocument(sharing: buffer, range: wrong) == nil, "\(wrong)")
        }
    }

    @Test("truncated or corrupt bytes throw instead of crashing")
    func corruptBytesThrow() {
        let bytes = Self.everyTypeBytes()
        for cut in [0, 3, 4, 5, 17, bytes.count / 2, bytes.count - 1] {
            #expect(throws: BSONDecodingError.self) { try BSONDocument(bsonBytes: Array(bytes.prefix(cut))) }
        }
        var badType = bytes
        badType[4] = 0x42
        #expect(throws: BSONDecodingError.self) { try BSONDocument(bsonBytes: badType) }
    }
}
