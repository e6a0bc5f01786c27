import BSONModel
import Foundation

/// Compact relaxed Extended JSON v2 (no spaces, field order kept): the cached value format (DESIGN.md §4 "Values").
public enum ExtendedJSON {
    /// The document as compact relaxed Extended JSON.
    public static func relaxed(_ document: BSONDocument) -> String {
        var writer = RelaxedWriter(limit: .max)
        try? writer.writeDocument(document)
        return writer.text
    }

    /// One value as compact relaxed Extended JSON.
    public static func relaxed(_ value: BSONValue) -> String {
        var writer = RelaxedWriter(limit: .max)
        try? writer.writeValue(value)
        return writer.text
    }

    /// The document as compact relaxed Extended JSON, or `nil` as soon as the text would exceed `maxBytes` UTF-8 bytes.
    public static func relaxed(_ document: BSONDocument, maxBytes: Int) -> String? {
        var writer = RelaxedWriter(limit: maxBytes)
        do {
            try writer.writeDocument(document)
        } catch {
            return nil
        }
        return writer.out.count <= maxBytes ? writer.text : nil
    }

    /// A JSON string literal for `text`, quotes included, escaped as `JSON.stringify` does.
    public static func quoted(_ text: String) -> String {
        var writer = RelaxedWriter(limit: .max)
        writer.writeString(text)
        return writer.text
    }
}

/// Thrown inside the writer when its byte limit is passed.
private struct LimitExceeded: Error {}

/// Appends relaxed Extended JSON to a byte buffer.
private struct RelaxedWriter {
    let limit: Int
    var out: [UInt8] = []

    init(limit: Int) {
        self.limit = limit
        out.reserveCapacity(min(limit, 512))
    }

    var text: String { String(decoding: out, as: UTF8.self) }

    mutating func raw(_ s: String) { out.append(contentsOf: s.utf8) }

    mutating func checkLimit() throws {
        if out.count > limit { throw LimitExceeded() }
    }

    mutating func writeDocument(_ document: BSONDocument) throws {
        out.append(UInt8(ascii: "{"))
        for (index, field) in document.fields.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            writeString(field.key)
            out.append(UInt8(ascii: ":"))
            try writeValue(field.value)
            try checkLimit()
        }
        out.append(UInt8(ascii: "}"))
    }

    mutating func writeArray(_ values: [BSONValue]) throws {
        out.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            try writeValue(value)
            try checkLimit()
        }
        out.append(UInt8(ascii: "]"))
    }

    mutating func writeString(_ s: String) {
        out.append(UInt8(ascii: "\""))
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: s.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x08: raw("\\b")
            case 0x0C: raw("\\f")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x00..<0x20:
                raw("\\u00")
                out.append(contentsOf: hexString([byte]).utf8)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `{"<name>":<body>}` where the body is written by `body`.
    mutating func wrapper(_ name: String, _ body: (inout RelaxedWriter) throws -> Void) rethrows {
        out.append(UInt8(ascii: "{"))
        writeString(name)
        out.append(UInt8(ascii: ":"))
        try body(&self)
        out.append(UInt8(ascii: "}"))
    }

    mutating func writeValue(_ value: BSONValue) throws {
        switch value {
        case .double(let d):
            if d.isFinite {
                raw(ExtendedJSON.relaxedNumber(d))
            } else {
                wrapper("$numberDouble") { $0.writeString(d.isNaN ? "NaN" : (d < 0 ? "-Infinity" : "Infinity")) }
            }
        case .string(let s):
            if out.count + s.utf8.count > limit { throw LimitExceeded() }
            writeString(s)
        case .document(let d): try writeDocument(d)
        case .array(let a): try writeArray(a)
        case .binary(let subtype, let data):
            wrapper("$binary") {
                $0.raw("{\"base64\":")
                $0.writeString(Data(data).base64EncodedString())
                $0.raw(",\"subType\":\"\(hexString([subtype]))\"}")
            }
        case .undefined: raw("{\"$undefined\":true}")
        case .objectId(let oid):
            raw("{\"$oid\":\"")
            appendHex(oid.bytes, to: &out)
            raw("\"}")
        case .bool(let b): raw(b ? "true" : "false")
        case .datetime(let ms):
            let start = out.count
            raw("{\"$date\":\"")
            if ExtendedJSON.appendISODate(milliseconds: ms, years: 1970...9999, to: &out) {
                raw("\"}")
            } else {
                out.removeSubrange(start...)
                raw("{\"$date\":{\"$numberLong\":\"\(ms)\"}}")
            }
        case .null: raw("null")
        case .regex(let pattern, let options):
            wrapper("$regularExpression") {
                $0.raw("{\"pattern\":")
                $0.writeString(pattern)
                $0.raw(",\"options\":")
                $0.writeString(String(options.sorted()))
                $0.raw("}")
            }
        case .dbPointer(let namespace, let id):
            wrapper("$dbPointer") {
                $0.raw("{\"$ref\":")
                $0.writeString(namespace)
                $0.raw(",\"$id\":{\"$oid\":\"\(id.hex)\"}}")
            }
        case .javascript(let code): wrapper("$code") { $0.writeString(code) }
        case .symbol(let s): wrapper("$symbol") { $0.writeString(s) }
        case .javascriptWithScope(let code, let scope):
            raw("{\"$code\":")
            writeString(code)
            raw(",\"$scope\":")
            try writeDocument(scope)
            raw("}")
        case .int32(let i): raw(String(i))
        case .timestamp(let seconds, let increment): raw("{\"$timestamp\":{\"t\":\(seconds),\"i\":\(increment)}}")
        case .int64(let i): raw(String(i))
        case .decimal128(let d): raw("{\"$numberDecimal\":\"\(d.description)\"}")
        case .minKey: raw("{\"$minKey\":1}")
        case .maxKey: raw("{\"$maxKey\":1}")
        }
    }
}
