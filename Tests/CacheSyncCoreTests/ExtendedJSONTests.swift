import BSONModel
import Testing
@testable import CacheSyncCore

@Suite("Relaxed Extended JSON writer and reader")
struct ExtendedJSONTests {
    static let oid = ObjectID(hex: "663881d9a1b2c3d4e5f60718")!
    static let uuidBytes: [UInt8] = [0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00]

    @Test("each BSON type is written in compact relaxed form", arguments: [
        (BSONValue.int32(5), "5"),
        (.int32(-2_147_483_648), "-2147483648"),
        (.int64(9_007_199_254_740_993), "9007199254740993"),
        (.int64(.min), "-9223372036854775808"),
        (.int64(.max), "9223372036854775807"),
        (.int32(0), "0"),
        (.datetime(.min), #"{"$date":{"$numberLong":"-9223372036854775808"}}"#),
        (.double(1.0), "1.0"),
        (.double(-0.0), "-0.0"),
        (.double(0.1), "0.1"),
        (.double(-2.5), "-2.5"),
        (.double(1e300), "1e+300"),
        (.double(.infinity), #"{"$numberDouble":"Infinity"}"#),
        (.double(-.infinity), #"{"$numberDouble":"-Infinity"}"#),
        (.double(.nan), #"{"$numberDouble":"NaN"}"#),
        (.bool(true), "true"),
        (.bool(false), "false"),
        (.null, "null"),
        (.objectId(oid), #"{"$oid":"663881d9a1b2c3d4e5f60718"}"#),
        (.datetime(1_714_979_289_123), #"{"$date":"2024-05-06T07:08:09.123Z"}"#),
        (.datetime(0), #"{"$date":"1970-01-01T00:00:00.000Z"}"#),
        (.datetime(253_402_300_799_999), #"{"$date":"9999-12-31T23:59:59.999Z"}"#),
        (.datetime(253_402_300_800_000), #"{"$date":{"$numberLong":"253402300800000"}}"#),
        (.datetime(-1), #"{"$date":{"$numberLong":"-1"}}"#),
        (.binary(subtype: 4, data: uuidBytes), #"{"$binary":{"base64":"Ej5FZ+ibEtOkVkJmFBdAAA==","subType":"04"}}"#),
        (.binary(subtype: 0x80, data: [1, 2, 3]), #"{"$binary":{"base64":"AQID","subType":"80"}}"#),
        (.decimal128(Decimal128(low: 123, high: 0x3042_0000_0000_0000)), #"{"$numberDecimal":"1.23E+3"}"#),
        (.timestamp(seconds: 1_714_979_289, increment: 7), #"{"$timestamp":{"t":1714979289,"i":7}}"#),
        (.regex(pattern: "^a\\.b$", options: "mi"), #"{"$regularExpression":{"pattern":"^a\\.b$","options":"im"}}"#),
        (.minKey, #"{"$minKey":1}"#),
        (.maxKey, #"{"$maxKey":1}"#),
        (.undefined, #"{"$undefined":true}"#),
        (.javascript("f()"), #"{"$code":"f()"}"#),
        (.javascriptWithScope(code: "x", scope: ["a": .int32(1)]), #"{"$code":"x","$scope":{"a":1}}"#),
        (.symbol("sym"), #"{"$symbol":"sym"}"#),
        (.dbPointer(namespace: "db.c", id: oid), #"{"$dbPointer":{"$ref":"db.c","$id":{"$oid":"663881d9a1b2c3d4e5f60718"}}}"#),
        (.array([.int32(1), .string("x"), .array([])]), #"[1,"x",[]]"#),
        (.document([:]), "{}"),
    ])
    func writesType(value: BSONValue, json: String) {
        #expect(ExtendedJSON.relaxed(value) == json)
    }

    @Test("documents keep field order and repeated keys, with no spaces")
    func documentOrder() {
        let doc: BSONDocument = ["z": .int32(1), "a": .document(["y": .string("x"), "b": .null]), "m": .bool(true)]
        #expect(ExtendedJSON.relaxed(doc) == #"{"z":1,"a":{"y":"x","b":null},"m":true}"#)
    }

    @Test("strings and keys are escaped like JSON.stringify, control characters as \\u00XX")
    func escaping() {
        let doc: BSONDocument = ["k\"\n": .string("a\"b\\c\n\r\t\u{08}\u{0C}\u{01}\u{1F}\u{00}/é😀")]
        #expect(ExtendedJSON.relaxed(doc) == #"{"k\"\n":"a\"b\\c\n\r\t\b\f\u0001\u001f\u0000/é😀"}"#)
        #expect(!ExtendedJSON.relaxed(doc).contains("\n"))
    }

    @Test("every ASCII character is escaped where it stands: in each of the eight-byte lanes and in the tail")
    func escapingAtEveryPosition() {
        func reference(_ byte: UInt8) -> String {
            switch byte {
            case 0x22: #"\""#
            case 0x5C: #"\\"#
            case 0x08: #"\b"#
            case 0x0C: #"\f"#
            case 0x0A: #"\n"#
            case 0x0D: #"\r"#
            case 0x09: #"\t"#
            case 0..<0x20: "\\u00" + hexString([byte])
            default: String(UnicodeScalar(byte))
            }
        }
        for byte in UInt8(0)..<0x80 {
            for position in 0..<17 {
                var text = Array(repeating: UInt8(ascii: "a"), count: 17)
                text[position] = byte
                let expected = "\"" + text.map(reference).joined() + "\""
                #expect(ExtendedJSON.quoted(String(decoding: text, as: UTF8.self)) == expected, "\(byte) at \(position)")
            }
        }
    }

    @Test("field names are written as strings are: escaped where needed, at every position, and past the writer's first buffer")
    func namesEscaped() {
        var names = ["", "a", "é", "名前", String(repeating: "n", count: 600)]
        for byte in UInt8(1)..<0x80 {
            for position in [0, 3, 6] {
                var text = Array(repeating: UInt8(ascii: "a"), count: 7)
                text[position] = byte
                names.append(String(decoding: text, as: UTF8.self))
            }
        }
        for name in names {
            let document: BSONDocument = [name: .int32(1), "after": .bool(true)]
            #expect(ExtendedJSON.relaxed(document) == "{" + ExtendedJSON.quoted(name) + #":1,"after":true}"#, "\(name.utf8.map { $0 })")
        }
    }

    @Test("a document larger than the writer's first buffer is written whole")
    func growsItsBuffer() {
        let long = String(repeating: "é", count: 3000)
        let doc: BSONDocument = ["a": .string(long), "b": .array(Array(repeating: .int64(-12345), count: 500))]
        let json = ExtendedJSON.relaxed(doc)
        #expect(json == #"{"a":""# + long + #"","b":["# + Array(repeating: "-12345", count: 500).joined(separator: ",") + "]}")
        #expect(ExtendedJSON.relaxed(doc, maxBytes: json.utf8.count) == json)
        #expect(ExtendedJSON.relaxed(doc, maxBytes: json.utf8.count - 1) == nil)
    }

    @Test("the byte limit returns nil only when the text is longer")
    func byteLimit() {
        let doc: BSONDocument = ["a": .string("12345")]
        let json = #"{"a":"12345"}"#
        #expect(ExtendedJSON.relaxed(doc, maxBytes: json.utf8.count) == json)
        #expect(ExtendedJSON.relaxed(doc, maxBytes: json.utf8.count - 1) == nil)
        #expect(ExtendedJSON.relaxed(["a": .array(Array(repeating: .int32(7), count: 1000))], maxBytes: 100) == nil)
    }

    @Test("the reader keeps key order and reads canonical wrappers")
    func readsCanonical() throws {
        let text = """
        {"z": {"$numberInt": "1"}, "b": {"$numberLong": "2"}, "a": {"$numberDouble": "-Infinity"},
         "d": {"$date": {"$numberLong": "-5"}}, "e": {"$date": "2024-05-06T09:08:09.5+02:00"},
         "u": {"$binary": {"base64": "AQID", "subType": "5"}}, "x": {"$uuid": "123e4567-e89b-12d3-a456-426614174000"},
         "r": {"$regularExpression": {"pattern": "p", "options": "i"}}, "t": {"$timestamp": {"t": 3, "i": 4}},
         "n": {"$numberDecimal": "-1.00E-8"}, "plain": [1, 2.0, 3000000000, true, null, "s\\u00e9\\ud83d\\ude00"],
         "ref": {"$ref": "c", "$id": 1}}
        """
        let doc = try ExtendedJSONReader.document(text)
        #expect(doc.keys == ["z", "b", "a", "d", "e", "u", "x", "r", "t", "n", "plain", "ref"])
        #expect(doc["z"] == .int32(1))
        #expect(doc["b"] == .int64(2))
        #expect(doc["a"] == .double(-.infinity))
        #expect(doc["d"] == .datetime(-5))
        #expect(doc["e"] == .datetime(1_714_979_289_500))
        #expect(doc["u"] == .binary(subtype: 5, data: [1, 2, 3]))
        #expect(doc["x"] == .binary(subtype: 4, data: Self.uuidBytes))
        #expect(doc["r"] == .regex(pattern: "p", options: "i"))
        #expect(doc["t"] == .timestamp(seconds: 3, increment: 4))
        #expect(doc["n"] == .decimal128(Decimal128(low: 100, high: 0xB02C_0000_0000_0000)))
        #expect(doc["plain"] == .array([.int32(1), .double(2.0), .int64(3_000_000_000), .bool(true), .null, .string("sé😀")]))
        #expect(doc["ref"] == .document(["$ref": .string("c"), "$id": .int32(1)]))
    }

    @Test("writer output reads back to the same document")
    func roundTrip() throws {
        let doc: BSONDocument = [
            "_id": .objectId(Self.oid), "s": .string("line\nbreak \"q\" \u{01}"), "i": .int32(-3), "l": .int64(1 << 40),
            "d": .double(1.5), "w": .double(3.0), "dt": .datetime(1_714_979_289_123), "old": .datetime(-86_400_000),
            "bin": .binary(subtype: 4, data: Self.uuidBytes), "dec": .decimal128(Decimal128("19.99")!),
            "ts": .timestamp(seconds: 1, increment: 2), "re": .regex(pattern: "a", options: "im"),
            "code": .javascriptWithScope(code: "c", scope: ["v": .bool(false)]), "sym": .symbol("y"),
            "ptr": .dbPointer(namespace: "a.b", id: Self.oid), "min": .minKey, "max": .maxKey, "u": .undefined,
            "nested": .array([.document(["k": .null]), .array([.string("")])]),
        ]
        #expect(try ExtendedJSONReader.document(ExtendedJSON.relaxed(doc)) == doc)
    }

    @Test("malformed JSON and malformed wrappers are rejected with a position")
    func readerErrors() {
        for text in [#"{"a":}"#, "[1,2", #"{"a":1,}"#, #"{"a":"x"} extra"#, "{'a':1}", "\"raw\ncontrol\""] {
            #expect(throws: ExtendedJSONError.self, "\(text)") { try ExtendedJSONReader.value(text) }
        }
        #expect(throws: ExtendedJSONError.self) { try ExtendedJSONReader.document("[1]") }
        do {
            _ = try ExtendedJSONReader.document(#"{"a": {"$oid": "xyz"}}"#)
            Issue.record("a bad $oid parsed")
        } catch {
            #expect(error.message.contains("$oid"))
            #expect(error.offset == 6)
        }
    }

    @Test("ISO dates parse with offsets and fractions and format with milliseconds")
    func isoDates() {
        #expect(ExtendedJSON.parseISODate("2024-05-06T07:08:09Z") == 1_714_979_289_000)
        #expect(ExtendedJSON.parseISODate("2024-05-06T07:08:09.1234Z") == 1_714_979_289_123)
        #expect(ExtendedJSON.parseISODate("2024-05-06T00:08:09.123-0700") == 1_714_979_289_123)
        #expect(ExtendedJSON.parseISODate("1969-12-31T23:59:59.999Z") == -1)
        #expect(ExtendedJSON.parseISODate("2024-05-06 07:08:09Z") == nil)
        #expect(ExtendedJSON.isoDate(milliseconds: -1) == "1969-12-31T23:59:59.999Z")
        #expect(ExtendedJSON.isoDate(milliseconds: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(ExtendedJSON.isoDate(milliseconds: -62_167_219_200_000) == "0000-01-01T00:00:00.000Z")
        #expect(ExtendedJSON.isoDate(milliseconds: 253_402_300_800_000) == nil, "year 10000 needs a fifth digit")
    }
}
