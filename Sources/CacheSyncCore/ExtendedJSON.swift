import BSONModel
import Foundation

/// Compact relaxed Extended JSON v2 (no spaces, field order kept): the cached value format (docs/ARCHITECTURE.md §4 "Values").
///
/// Written straight from BSON bytes: a document that arrives encoded (a change event's `fullDocument`) is never
/// decoded into a tree on its way to Redis; a decoded one is encoded first.
public enum ExtendedJSON {
    /// The document as compact relaxed Extended JSON.
    public static func relaxed(_ document: BSONDocument) -> String {
        relaxed(EncodedBSONDocument(document), maxBytes: .max) ?? ""
    }

    /// One value as compact relaxed Extended JSON.
    public static func relaxed(_ value: BSONValue) -> String {
        (try? RelaxedWriter.text(limit: .max) { try $0.writeValue(value) }) ?? ""
    }

    /// The document as compact relaxed Extended JSON, or `nil` as soon as the text would exceed `maxBytes` UTF-8 bytes.
    public static func relaxed(_ document: BSONDocument, maxBytes: Int) -> String? {
        relaxed(EncodedBSONDocument(document), maxBytes: maxBytes)
    }

    /// The encoded document as compact relaxed Extended JSON, or `nil` when the text would exceed `maxBytes` UTF-8
    /// bytes (or the bytes are not a valid document).
    public static func relaxed(_ document: EncodedBSONDocument, maxBytes: Int) -> String? {
        guard case .text(let text) = rendering(document, maxBytes: maxBytes) else { return nil }
        return text
    }

    /// What writing a document as JSON within a byte limit gave.
    public enum Rendering: Sendable, Equatable {
        /// The compact relaxed Extended JSON.
        case text(String)
        /// The text would exceed the limit.
        case tooLarge
        /// The bytes are not a valid BSON document (checked as they are written); why.
        case invalid(String)
    }

    /// The encoded document as compact relaxed Extended JSON within `maxBytes` UTF-8 bytes, or why not.
    public static func rendering(_ document: EncodedBSONDocument, maxBytes: Int) -> Rendering {
        var reader = document.reader
        do {
            let text = try RelaxedWriter.text(limit: maxBytes) { try $0.writeDocument(&reader, array: false) }
            return text.utf8.count <= maxBytes ? .text(text) : .tooLarge
        } catch let error as BSONDecodingError {
            return .invalid(error.description)
        } catch {
            return .tooLarge
        }
    }

    /// A JSON string literal for `text`, quotes included, escaped as `JSON.stringify` does.
    public static func quoted(_ text: String) -> String {
        (try? RelaxedWriter.text(limit: .max) { $0.writeString(text) }) ?? ""
    }
}

/// Thrown inside the writer when its byte limit is passed.
private struct LimitExceeded: Error {}

/// Appends relaxed Extended JSON for BSON bytes to a byte buffer.
private struct RelaxedWriter {
    let limit: Int
    var out: ByteSink

    /// Runs `body` on a new writer and returns what it wrote, rethrowing what it threw (`LimitExceeded`, or the
    /// reader's `BSONDecodingError`) without making text of a partial write; invalid UTF-8 in the document's
    /// strings becomes U+FFFD, as decoding them to `String` would. The writer's buffer is freed here.
    static func text(limit: Int, _ body: (inout RelaxedWriter) throws -> Void) rethrows -> String {
        var writer = RelaxedWriter(limit: limit, out: ByteSink(capacity: min(limit, 512)))
        defer { writer.out.free() }
        try body(&writer)
        return writer.out.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Literal text (a string literal is a `StaticString` here: its bytes are appended without a `String`).
    mutating func raw(_ s: StaticString) {
        out.append(UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Text made at run time (the rare types' interpolations).
    mutating func rawText(_ s: String) {
        var s = s
        s.withUTF8 { out.append($0) }
    }

    mutating func checkLimit() throws {
        if out.count > limit { throw LimitExceeded() }
    }

    /// An embedded document or array, from its length on; arrays drop their element names.
    mutating func writeDocument(_ reader: inout BSONReader, array: Bool) throws {
        out.append(array ? UInt8(ascii: "[") : UInt8(ascii: "{"))
        var first = true
        try reader.readElements { reader, type in
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            if array {
                try reader.skipCString()
            } else {
                try writeName(&reader)
            }
            try writeValue(&reader, type: type)
            try checkLimit()
        }
        out.append(array ? UInt8(ascii: "]") : UInt8(ascii: "}"))
    }

    /// An element's name and `:`, the reader moved past the name: a name that needs no escaping (the usual case)
    /// is copied as its terminator is looked for.
    mutating func writeName(_ reader: inout BSONReader) throws {
        let start = reader.offset
        if let end = reader.bytes.withUnsafeBufferPointer({ out.appendName($0, from: start) }) {
            reader.offset = end
        } else {
            reader.withBytes(try reader.cstringRange()) { writeString($0) }
            out.append(UInt8(ascii: ":"))
        }
    }

    /// A JSON string of text made at run time.
    mutating func writeString(_ text: String) {
        var text = text
        text.withUTF8 { writeString($0) }
    }

    /// A JSON string of UTF-8 bytes: quoted as they are when nothing in them needs escaping (the usual case).
    mutating func writeString(_ utf8: UnsafeBufferPointer<UInt8>) {
        if !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.appendQuoted(utf8)
            return
        }
        out.append(UInt8(ascii: "\""))
        for byte in utf8 {
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
                out.appendHex(CollectionOfOne(byte))
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// A finite double as `ExtendedJSON.relaxedNumber` writes it, from its text without another `String`.
    mutating func writeNumber(_ d: Double) {
        var text = d.description
        text.withUTF8 { digits in
            out.append(digits)
            if ExtendedJSON.isIntegral(digits) { raw(".0") }
        }
    }

    /// A length-prefixed BSON string, as a JSON string.
    mutating func writeBSONString(_ reader: inout BSONReader) throws {
        let range = try reader.stringRange()
        if out.count + range.count > limit { throw LimitExceeded() }
        reader.withBytes(range) { writeString($0) }
    }

    /// `{"<name>":<body>}` where the body is written by `body`.
    mutating func wrapper(_ name: String, _ body: (inout RelaxedWriter) throws -> Void) rethrows {
        out.append(UInt8(ascii: "{"))
        writeString(name)
        out.append(UInt8(ascii: ":"))
        try body(&self)
        out.append(UInt8(ascii: "}"))
    }

    /// The value of an element of BSON `type`, the reader positioned after the element's name.
    mutating func writeValue(_ reader: inout BSONReader, type: UInt8) throws {
        switch type {
        case 0x01:
            let d = Double(bitPattern: try reader.le(UInt64.self))
            if d.isFinite {
                writeNumber(d)
            } else {
                wrapper("$numberDouble") { $0.writeString(d.isNaN ? "NaN" : (d < 0 ? "-Infinity" : "Infinity")) }
            }
        case 0x02: try writeBSONString(&reader)
        case 0x03: try writeDocument(&reader, array: false)
        case 0x04: try writeDocument(&reader, array: true)
        case 0x07:
            try reader.need(12)
            raw("{\"$oid\":\"")
            reader.withBytes(reader.offset..<reader.offset + 12) { out.appendHex($0) }
            reader.offset += 12
            raw("\"}")
        case 0x08: raw(try reader.u8() != 0 ? "true" : "false")
        case 0x09:
            let ms = try reader.le(Int64.self)
            let written: Void? = ExtendedJSON.withISODate(milliseconds: ms, years: 1970...9999) { date in
                raw("{\"$date\":\"")
                out.append(date)
                raw("\"}")
            }
            if written == nil {
                raw("{\"$date\":{\"$numberLong\":\"")
                out.appendDecimal(ms)
                raw("\"}}")
            }
        case 0x0A: raw("null")
        case 0x10: out.appendDecimal(Int64(try reader.le(Int32.self)))
        case 0x12: out.appendDecimal(try reader.le(Int64.self))
        default:
            // The rare types: decoded, then written from the value.
            try writeDecoded(reader.readValue(type: type))
        }
    }

    /// The types `writeValue` does not write from bytes.
    mutating func writeDecoded(_ value: BSONValue) throws {
        switch value {
        case .binary(let subtype, let data):
            wrapper("$binary") {
                $0.raw("{\"base64\":")
                $0.writeString(Data(data).base64EncodedString())
                $0.rawText(",\"subType\":\"\(hexString([subtype]))\"}")
            }
        case .undefined: raw("{\"$undefined\":true}")
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
                $0.rawText(",\"$id\":{\"$oid\":\"\(id.hex)\"}}")
            }
        case .javascript(let code): wrapper("$code") { $0.writeString(code) }
        case .symbol(let s): wrapper("$symbol") { $0.writeString(s) }
        case .javascriptWithScope(let code, let scope):
            raw("{\"$code\":")
            writeString(code)
            raw(",\"$scope\":")
            var scopeReader = EncodedBSONDocument(scope).reader
            try writeDocument(&scopeReader, array: false)
            raw("}")
        case .timestamp(let seconds, let increment): rawText("{\"$timestamp\":{\"t\":\(seconds),\"i\":\(increment)}}")
        case .decimal128(let d): rawText("{\"$numberDecimal\":\"\(d.description)\"}")
        case .minKey: raw("{\"$minKey\":1}")
        case .maxKey: raw("{\"$maxKey\":1}")
        case .double, .string, .document, .array, .objectId, .bool, .datetime, .null, .int32, .int64:
            try writeValue(value)
        }
    }

    /// A decoded value, through its bytes.
    mutating func writeValue(_ value: BSONValue) throws {
        var reader = EncodedBSONDocument(["": value]).reader
        try reader.readElements { reader, type in
            try reader.skipCString()
            try writeValue(&reader, type: type)
        }
    }
}

/// A growable byte buffer written through a pointer — the writer appends a few bytes at a time, each of which an
/// array would check for uniqueness and capacity — owned by one writer, which frees it (`free()`).
private struct ByteSink {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    func free() {
        base.deallocate()
    }

    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    /// Room for `n` more bytes.
    @inline(__always)
    private mutating func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    private mutating func grow(_ needed: Int) {
        let larger = max(needed, 2 * capacity)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        moved.initialize(from: base, count: count)
        base.deallocate()
        base = moved
        capacity = larger
    }

    mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let start = bytes.baseAddress else { return }
        reserve(bytes.count)
        (base + count).initialize(from: start, count: bytes.count)
        count += bytes.count
    }

    /// A name, `bytes` from `start` up to the first NUL, between double quotes and followed by `:`; returns
    /// where the bytes after the NUL start. `nil`, appending nothing, when a byte needs escaping in JSON or there
    /// is no NUL.
    mutating func appendName(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        let mark = count
        append(UInt8(ascii: "\""))
        var index = start
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0 {
                reserve(2)
                (base[count], base[count + 1]) = (UInt8(ascii: "\""), UInt8(ascii: ":"))
                count += 2
                return index + 1
            }
            if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { break }
            append(byte)
            index += 1
        }
        count = mark
        return nil
    }

    /// `bytes` between double quotes.
    mutating func appendQuoted(_ bytes: UnsafeBufferPointer<UInt8>) {
        reserve(bytes.count + 2)
        base[count] = UInt8(ascii: "\"")
        if let start = bytes.baseAddress { (base + count + 1).initialize(from: start, count: bytes.count) }
        base[count + 1 + bytes.count] = UInt8(ascii: "\"")
        count += bytes.count + 2
    }

    /// The lowercase hexadecimal digits of `bytes`.
    mutating func appendHex<C: Collection<UInt8>>(_ bytes: C) {
        reserve(2 * bytes.count)
        count += writeHex(bytes, into: UnsafeMutableBufferPointer(start: base + count, count: 2 * bytes.count))
    }

    /// `n` in decimal.
    mutating func appendDecimal(_ n: Int64) {
        reserve(21)
        if n < 0 { append(UInt8(ascii: "-")) }
        var magnitude = n.magnitude
        var digits = 0
        repeat {
            base[count + digits] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            digits += 1
        } while magnitude > 0
        var written = UnsafeMutableBufferPointer(start: base + count, count: digits)
        written.reverse()
        count += digits
    }
}
