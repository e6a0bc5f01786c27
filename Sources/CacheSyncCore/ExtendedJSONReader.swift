import BSONModel
import Foundation

/// Reads canonical or relaxed Extended JSON v2 into BSON, keeping field order (fixtures, read-through ids).
public enum ExtendedJSONReader {
    /// Parses a JSON object into a document.
    public static func document(_ text: String) throws(ExtendedJSONError) -> BSONDocument {
        guard case .document(let document) = try value(text) else {
            throw ExtendedJSONError("expected a JSON object at the top level", at: 0)
        }
        return document
    }

    /// Parses any JSON value into a BSON value.
    public static func value(_ text: String) throws(ExtendedJSONError) -> BSONValue {
        var parser = JSONParser(bytes: Array(text.utf8))
        parser.skipSpace()
        let node = try parser.parseValue()
        parser.skipSpace()
        guard parser.offset == parser.bytes.count else {
            throw ExtendedJSONError("unexpected text after the JSON value", at: parser.offset)
        }
        return try convert(node)
    }

    private static func convert(_ node: JSONNode) throws(ExtendedJSONError) -> BSONValue {
        switch node.kind {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .string(let s): return .string(s)
        case .number(let text): return try number(text, at: node.offset)
        case .array(let items):
            var values: [BSONValue] = []
            for item in items { values.append(try convert(item)) }
            return .array(values)
        case .object(let fields):
            if let special = try wrapper(fields, at: node.offset) { return special }
            var document = BSONDocument()
            for (key, item) in fields { document.fields.append((key: key, value: try convert(item))) }
            return .document(document)
        }
    }

    private static func number(_ text: String, at offset: Int) throws(ExtendedJSONError) -> BSONValue {
        if !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
            if let i = Int32(text) { return .int32(i) }
            if let i = Int64(text) { return .int64(i) }
        }
        guard let d = Double(text) else { throw ExtendedJSONError("bad number \(text)", at: offset) }
        return .double(d)
    }

    /// The type wrapper (`$oid`, `$date`, …) an object stands for, or `nil` for a plain document.
    private static func wrapper(_ fields: [(String, JSONNode)], at offset: Int) throws(ExtendedJSONError) -> BSONValue? {
        guard let first = fields.first?.0, first.hasPrefix("$") else { return nil }
        let keys = fields.map(\.0)
        func bad(_ what: String) -> ExtendedJSONError { ExtendedJSONError("malformed \(first): \(what)", at: offset) }
        func string(_ node: JSONNode) throws(ExtendedJSONError) -> String {
            guard case .string(let s) = node.kind else { throw bad("expected a string") }
            return s
        }
        func object(_ node: JSONNode, _ names: [String]) throws(ExtendedJSONError) -> [String: JSONNode] {
            guard case .object(let inner) = node.kind, Set(inner.map(\.0)) == Set(names), inner.count == names.count else {
                throw bad("expected an object with \(names.joined(separator: ", "))")
            }
            return Dictionary(uniqueKeysWithValues: inner)
        }
        func uint32(_ node: JSONNode) throws(ExtendedJSONError) -> UInt32 {
            guard case .number(let t) = node.kind, let v = UInt32(t) else { throw bad("expected an unsigned 32-bit integer") }
            return v
        }
        let body = fields[0].1
        if keys == ["$code", "$scope"] {
            guard case .document(let scope) = try convert(fields[1].1) else { throw bad("$scope must be an object") }
            return .javascriptWithScope(code: try string(body), scope: scope)
        }
        guard fields.count == 1 else { return nil }
        switch first {
        case "$oid":
            guard let oid = ObjectID(hex: try string(body)) else { throw bad("expected 24 hexadecimal digits") }
            return .objectId(oid)
        case "$symbol": return .symbol(try string(body))
        case "$code": return .javascript(try string(body))
        case "$numberInt":
            guard let v = Int32(try string(body)) else { throw bad("expected a 32-bit integer string") }
            return .int32(v)
        case "$numberLong":
            guard let v = Int64(try string(body)) else { throw bad("expected a 64-bit integer string") }
            return .int64(v)
        case "$numberDouble":
            switch try string(body) {
            case "Infinity": return .double(.infinity)
            case "-Infinity": return .double(-.infinity)
            case "NaN": return .double(.nan)
            case let text:
                guard let d = Double(text), d.isFinite else { throw bad("expected a number string") }
                return .double(d)
            }
        case "$numberDecimal":
            guard let d = Decimal128(try string(body)) else { throw bad("not an exactly representable Decimal128") }
            return .decimal128(d)
        case "$binary":
            let parts = try object(body, ["base64", "subType"])
            guard let data = Data(base64Encoded: try string(parts["base64"]!)) else { throw bad("invalid base64") }
            let subtypeText = try string(parts["subType"]!)
            guard (1...2).contains(subtypeText.count), let subtype = UInt8(subtypeText, radix: 16) else {
                throw bad("subType must be one or two hexadecimal digits")
            }
            return .binary(subtype: subtype, data: Array(data))
        case "$uuid":
            let hex = try string(body).filter { $0 != "-" }
            guard hex.count == 32, let bytes = ObjectID.bytes(fromHex: hex) else { throw bad("expected a UUID") }
            return .binary(subtype: 4, data: bytes)
        case "$date":
            switch body.kind {
            case .string(let iso):
                guard let ms = ExtendedJSON.parseISODate(iso) else { throw bad("expected an ISO-8601 date") }
                return .datetime(ms)
            case .number(let text):
                guard let ms = Int64(text) else { throw bad("expected integer milliseconds") }
                return .datetime(ms)
            default:
                guard case .int64(let ms) = try convert(body) else { throw bad("expected {\"$numberLong\": …}") }
                return .datetime(ms)
            }
        case "$timestamp":
            let parts = try object(body, ["t", "i"])
            return .timestamp(seconds: try uint32(parts["t"]!), increment: try uint32(parts["i"]!))
        case "$regularExpression":
            let parts = try object(body, ["pattern", "options"])
            return .regex(pattern: try string(parts["pattern"]!), options: try string(parts["options"]!))
        case "$dbPointer":
            let parts = try object(body, ["$ref", "$id"])
            guard case .objectId(let oid) = try convert(parts["$id"]!) else { throw bad("$id must be an $oid") }
            return .dbPointer(namespace: try string(parts["$ref"]!), id: oid)
        case "$minKey": return .minKey
        case "$maxKey": return .maxKey
        case "$undefined": return .undefined
        default: return nil
        }
    }
}

extension ObjectID {
    /// Bytes of an even number of hexadecimal digits; `nil` otherwise.
    static func bytes(fromHex hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < digits.count {
            guard let pair = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(pair)
            i += 2
        }
        return out
    }
}

/// A parsed JSON value with the byte offset it started at.
private struct JSONNode {
    indirect enum Kind {
        case null
        case bool(Bool)
        case number(String)
        case string(String)
        case array([JSONNode])
        case object([(String, JSONNode)])
    }

    let kind: Kind
    let offset: Int
}

/// A small strict JSON parser that keeps object key order.
private struct JSONParser {
    let bytes: [UInt8]
    var offset = 0
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ message: String) -> ExtendedJSONError { ExtendedJSONError(message, at: offset) }

    mutating func skipSpace() {
        while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
    }

    mutating func literal(_ word: String) throws(ExtendedJSONError) {
        let w = Array(word.utf8)
        guard offset + w.count <= bytes.count, Array(bytes[offset..<offset + w.count]) == w else {
            throw fail("expected \(word)")
        }
        offset += w.count
    }

    mutating func parseValue() throws(ExtendedJSONError) -> JSONNode {
        guard offset < bytes.count else { throw fail("unexpected end of text") }
        let start = offset
        switch bytes[offset] {
        case UInt8(ascii: "{"): return JSONNode(kind: .object(try parseObject()), offset: start)
        case UInt8(ascii: "["): return JSONNode(kind: .array(try parseArray()), offset: start)
        case UInt8(ascii: "\""): return JSONNode(kind: .string(try parseString()), offset: start)
        case UInt8(ascii: "t"):
            try literal("true")
            return JSONNode(kind: .bool(true), offset: start)
        case UInt8(ascii: "f"):
            try literal("false")
            return JSONNode(kind: .bool(false), offset: start)
        case UInt8(ascii: "n"):
            try literal("null")
            return JSONNode(kind: .null, offset: start)
        default: return JSONNode(kind: .number(try parseNumber()), offset: start)
        }
    }

    mutating func nest() throws(ExtendedJSONError) {
        depth += 1
        guard depth <= 200 else { throw fail("nesting deeper than 200 levels") }
    }

    mutating func parseObject() throws(ExtendedJSONError) -> [(String, JSONNode)] {
        try nest()
        offset += 1
        var fields: [(String, JSONNode)] = []
        skipSpace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") {
            offset += 1
            depth -= 1
            return fields
        }
        while true {
            skipSpace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw fail("expected a key string") }
            let key = try parseString()
            skipSpace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            offset += 1
            skipSpace()
            fields.append((key, try parseValue()))
            skipSpace()
            guard offset < bytes.count else { throw fail("unterminated object") }
            if bytes[offset] == UInt8(ascii: ",") {
                offset += 1
            } else if bytes[offset] == UInt8(ascii: "}") {
                offset += 1
                depth -= 1
                return fields
            } else {
                throw fail("expected ',' or '}'")
            }
        }
    }

    mutating func parseArray() throws(ExtendedJSONError) -> [JSONNode] {
        try nest()
        offset += 1
        var items: [JSONNode] = []
        skipSpace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") {
            offset += 1
            depth -= 1
            return items
        }
        while true {
            skipSpace()
            items.append(try parseValue())
            skipSpace()
            guard offset < bytes.count else { throw fail("unterminated array") }
            if bytes[offset] == UInt8(ascii: ",") {
                offset += 1
            } else if bytes[offset] == UInt8(ascii: "]") {
                offset += 1
                depth -= 1
                return items
            } else {
                throw fail("expected ',' or ']'")
            }
        }
    }

    mutating func hex4() throws(ExtendedJSONError) -> UInt32 {
        guard offset + 4 <= bytes.count,
              let v = UInt32(String(decoding: bytes[offset..<offset + 4], as: UTF8.self), radix: 16) else {
            throw fail("bad \\u escape")
        }
        offset += 4
        return v
    }

    mutating func parseString() throws(ExtendedJSONError) -> String {
        offset += 1
        var out: [UInt8] = []
        while true {
            guard offset < bytes.count else { throw fail("unterminated string") }
            let c = bytes[offset]
            offset += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard offset < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[offset]
                offset += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        try literal("\\u")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                        scalar = 0x10000 + (scalar - 0xD800) << 10 + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("unpaired surrogate") }
                    out.append(contentsOf: String(Character(u)).utf8)
                default: throw fail("bad escape")
                }
            case 0x00..<0x20:
                throw fail("raw control character in string")
            default:
                out.append(c)
            }
        }
    }

    mutating func parseNumber() throws(ExtendedJSONError) -> String {
        let start = offset
        while offset < bytes.count, "+-0123456789.eE".utf8.contains(bytes[offset]) { offset += 1 }
        guard offset > start else { throw fail("unexpected character") }
        return String(decoding: bytes[start..<offset], as: UTF8.self)
    }
}
