import BSONModel
import Testing
@testable import CacheSyncCore

@Suite("DocumentID key text and parsing")
struct DocumentIDTests {
    static let uuid: [UInt8] = [0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00]

    @Test("an ObjectId keeps its 12 bytes in order, and compares and hashes by them")
    func objectIDBytes() {
        let bytes: [UInt8] = [0x66, 0x38, 0x81, 0xd9, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18]
        let oid = ObjectID(bytes: bytes)!
        #expect(oid.bytes == bytes)
        #expect(oid.hex == "663881d9a1b2c3d4e5f60718")
        #expect(oid == ObjectID(hex: "663881D9A1B2C3D4E5F60718"))
        for index in bytes.indices {
            var other = bytes
            other[index] ^= 1
            #expect(ObjectID(bytes: other)! != oid)
        }
        #expect(Set([oid, ObjectID(bytes: bytes)!]).count == 1)
        #expect(ObjectID(bytes: Array(bytes.dropLast())) == nil)
        #expect(ObjectID(bytes: bytes + [0]) == nil)
    }

    @Test("every _id type has its docs/ARCHITECTURE.md §4 key text", arguments: [
        (BSONValue.string("abc"), "abc"),
        (.string("héllo wörld ✓ 日本"), "héllo wörld ✓ 日本"),
        (.string("with space"), "with space"),
        (.string("50%"), "50%"),
        (.string(""), ""),
        (.objectId(ObjectID(hex: "663881D9A1B2C3D4E5F60718")!), "663881d9a1b2c3d4e5f60718"),
        (.int32(1), "1"),
        (.int64(1), "1"),
        (.double(1.0), "1"),
        (.int32(-42), "-42"),
        (.int64(Int64.min), "-9223372036854775808"),
        (.double(-0.0), "0"),
        (.double(1.5), "1.5"),
        (.double(0.1), "0.1"),
        (.double(-2.75), "-2.75"),
        (.double(1e20), "100000000000000000000"),
        (.double(9_223_372_036_854_775_808.0), "9223372036854775808"),
        (.double(-1e20), "-100000000000000000000"),
        (.double(.infinity), "Infinity"),
        (.decimal128(Decimal128("1.23E+3")!), "1.23E+3"),
        (.decimal128(Decimal128("-0")!), "-0"),
        (.binary(subtype: 4, data: uuid), "123e4567-e89b-12d3-a456-426614174000"),
        (.binary(subtype: 0, data: [1, 2, 3]), "AQID"),
        (.binary(subtype: 4, data: [1, 2, 3]), "AQID"),
        (.binary(subtype: 3, data: uuid), "Ej5FZ+ibEtOkVkJmFBdAAA=="),
        (.datetime(1_714_979_289_123), "2024-05-06T07:08:09.123Z"),
        (.datetime(-86_400_000), "1969-12-31T00:00:00.000Z"),
        (.document(["a": .int32(1), "b": .string("x")]), #"{"a":1,"b":"x"}"#),
        (.document(["b": .string("x"), "a": .int32(1)]), #"{"b":"x","a":1}"#),
        (.array([.int32(1), .string("x")]), #"[1,"x"]"#),
        (.bool(true), "true"),
        (.null, "null"),
        (.minKey, #"{"$minKey":1}"#),
        (.timestamp(seconds: 1, increment: 2), #"{"$timestamp":{"t":1,"i":2}}"#),
    ])
    func keyText(id: BSONValue, text: String) {
        #expect(DocumentID.keyText(id) == text)
    }

    @Test("strings with newline, CR, NUL or a leading % are percent-escaped behind a %", arguments: [
        ("a\nb", "%a%0Ab"),
        ("a\r\nb", "%a%0D%0Ab"),
        ("a\u{0}b", "%a%00b"),
        ("%41", "%%2541"),
        ("%", "%%25"),
        ("x%\n", "%x%25%0A"),
        // Found by the document-id fuzz target: a % that a combining mark follows is one Character with it.
        ("%\u{35D}%", "%%25\u{35D}%25"),
    ])
    func escapes(id: String, text: String) {
        #expect(DocumentID.keyText(.string(id)) == text)
    }

    @Test("distinct string ids never share a key, and no key holds a newline, CR or NUL")
    func injective() {
        let ids = ["a\nb", "%a%0Ab", "%%a%0Ab", "a%0Ab", "%", "%%25", "%25", "", "\n", "%0A", "\u{0}", "%00", "a\rb", "a\r\nb",
                   "x y", "x\ty", "{\"a\":1}", "é", "e\u{301}", "\u{35D}x\n", "%\u{35D}x%0A"]
        let keys = ids.map { DocumentID.keyText(.string($0)) }
        #expect(Set(keys.map { Array($0.utf8) }).count == ids.count)
        #expect(Set(keys.map { CacheKey(text: $0) }).count == ids.count)
        for key in keys {
            #expect(!Self.hasForbiddenByte(key), "\(key)")
        }
        let nested = DocumentID.keyText(.document(["k\n": .string("v\r\u{0}")]))
        #expect(!Self.hasForbiddenByte(nested))
    }

    static func hasForbiddenByte(_ key: String) -> Bool {
        let forbidden: Set<UInt8> = [0x0A, 0x0D, 0x00]
        return key.utf8.contains(where: forbidden.contains)
    }

    @Test("auto parsing: 24 hex → ObjectId, canonical integers → int, else string", arguments: [
        ("663881d9a1b2c3d4e5f60718", BSONValue.objectId(ObjectID(hex: "663881d9a1b2c3d4e5f60718")!)),
        ("42", .int32(42)),
        ("-7", .int32(-7)),
        ("0", .int32(0)),
        ("2147483648", .int64(2_147_483_648)),
        ("9223372036854775807", .int64(Int64.max)),
        ("9223372036854775808", .string("9223372036854775808")),
        ("007", .string("007")),
        ("-0", .string("-0")),
        ("+5", .string("+5")),
        ("1.5", .string("1.5")),
        ("abc", .string("abc")),
        ("663881d9a1b2c3d4e5f6071", .string("663881d9a1b2c3d4e5f6071")),
        ("٣", .string("٣")),
    ])
    func parseAuto(text: String, value: BSONValue) throws {
        #expect(try DocumentID.parse(text, idType: .auto) == value)
    }

    @Test("auto parsing round-trips with the key text", arguments: ["663881d9a1b2c3d4e5f60718", "42", "-9000000000", "007", "a b", "x:y"])
    func autoRoundTrip(text: String) throws {
        #expect(DocumentID.keyText(try DocumentID.parse(text, idType: .auto)) == text)
    }

    @Test("explicit id types parse their own form")
    func parseExplicit() throws {
        #expect(try DocumentID.parse("42", idType: .string) == .string("42"))
        #expect(try DocumentID.parse("663881d9a1b2c3d4e5f60718", idType: .string) == .string("663881d9a1b2c3d4e5f60718"))
        #expect(try DocumentID.parse("663881D9A1B2C3D4E5F60718", idType: .objectId) == .objectId(ObjectID(hex: "663881d9a1b2c3d4e5f60718")!))
        #expect(try DocumentID.parse("42", idType: .int) == .int32(42))
        #expect(try DocumentID.parse("-5000000000", idType: .int) == .int64(-5_000_000_000))
        #expect(try DocumentID.parse("123e4567-e89b-12d3-a456-426614174000", idType: .uuid) == .binary(subtype: 4, data: Self.uuid))
        #expect(try DocumentID.parse("123E4567E89B12D3A456426614174000", idType: .uuid) == .binary(subtype: 4, data: Self.uuid))
    }

    @Test("text that does not fit the id type gives a clear error", arguments: [
        ("xyz", IDType.objectId, #"id "xyz" is not a valid objectId (expected 24 hexadecimal digits)"#),
        ("12a", .int, #"id "12a" is not a valid int (expected an integer between -2^63 and 2^63-1)"#),
        ("99999999999999999999", .int, #"id "99999999999999999999" is not a valid int (expected an integer between -2^63 and 2^63-1)"#),
        ("123e4567-e89b-12d3-a456", .uuid, #"id "123e4567-e89b-12d3-a456" is not a valid uuid (expected a UUID like 123e4567-e89b-12d3-a456-426614174000)"#),
        ("a\nb", .objectId, #"id "a\nb" is not a valid objectId (expected 24 hexadecimal digits)"#),
    ])
    func parseErrors(text: String, idType: IDType, message: String) {
        do {
            _ = try DocumentID.parse(text, idType: idType)
            Issue.record("\(text) parsed as \(idType)")
        } catch {
            #expect(error.description == message)
            #expect(error.idType == idType)
        }
    }
}
