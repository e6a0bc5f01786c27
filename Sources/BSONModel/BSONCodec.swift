import Foundation

/// Why a byte buffer is not a valid BSON document.
public struct BSONDecodingError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, and at which byte offset.
    public let description: String
}

extension BSONDocument {
    /// Decodes a document from its BSON bytes (the format libbson and the wire use).
    public init(bsonBytes bytes: [UInt8]) throws {
        var reader = BSONReader(bytes: bytes)
        self = try reader.readDocument()
        guard reader.offset == bytes.count else {
            throw BSONDecodingError(description: "\(bytes.count - reader.offset) trailing bytes after the document")
        }
    }

    /// Encodes the document as BSON bytes.
    public func bsonBytes() -> [UInt8] {
        var out = [UInt8]()
        BSONWriter.writeDocument(self, into: &out)
        return out
    }
}

/// Reads BSON bytes front to back, checking every length against the buffer.
///
/// Public so that writers of other formats (Extended JSON) can walk a document's bytes without building its tree.
public struct BSONReader {
    /// The whole buffer.
    public let bytes: [UInt8]
    /// Where the next read starts.
    public var offset = 0
    /// How many documents (or arrays) the reader is inside.
    @usableFromInline var depth = 0

    /// The deepest nesting read. MongoDB checks BSON to 200 levels (and documents to 100), so a deeper document is
    /// not from a server; without a limit it would overflow the stack, which reading recurses on.
    public static let maxDepth = 1000

    /// A reader at `offset` in `bytes`.
    public init(bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    /// An error naming the current offset.
    public func fail(_ what: String) -> BSONDecodingError {
        BSONDecodingError(description: "\(what) at byte \(offset)")
    }

    /// Throws unless `n` more bytes are left.
    @inlinable @inline(__always)
    public func need(_ n: Int) throws {
        guard n >= 0, offset + n <= bytes.count else { throw truncated(n) }
    }

    @usableFromInline
    func truncated(_ n: Int) -> BSONDecodingError {
        fail("truncated value (needs \(n) bytes)")
    }

    /// One byte.
    @inlinable
    public mutating func u8() throws -> UInt8 {
        try need(1)
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A little-endian integer.
    @inlinable
    public mutating func le<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        try need(n)
        let v = bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        offset += n
        return v
    }

    mutating func raw(_ n: Int) throws -> [UInt8] {
        try need(n)
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    mutating func cstring() throws -> String {
        withBytes(try cstringRange()) { String(decoding: $0, as: UTF8.self) }
    }

    mutating func string() throws -> String {
        withBytes(try stringRange()) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the bytes at `range` (checked by the caller), without slicing the array: a slice would
    /// retain and release the buffer on every name and string read.
    @inlinable
    public func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[range])) }
    }

    /// Where a NUL-terminated name's bytes are (terminator excluded); the reader moves past it.
    @inlinable
    public mutating func cstringRange() throws -> Range<Int> {
        let start = offset
        try skipCString()
        return start..<offset - 1
    }

    /// Where a length-prefixed string's bytes are (terminator excluded); the reader moves past it.
    @inlinable
    public mutating func stringRange() throws -> Range<Int> {
        let len = Int(try le(Int32.self))
        guard len >= 1 else { throw fail("bad string length \(len)") }
        try need(len)
        guard bytes[offset + len - 1] == 0 else { throw fail("string without terminator") }
        defer { offset += len }
        return offset..<offset + len - 1
    }

    /// Skips a NUL-terminated name (found with `memchr`, which reads many bytes at a time).
    @inlinable
    public mutating func skipCString() throws {
        let start = offset
        let end = bytes.withUnsafeBytes { buffer -> Int? in
            guard start < buffer.count, let base = buffer.baseAddress,
                  let nul = memchr(base + start, 0, buffer.count - start) else { return nil }
            return base.distance(to: UnsafeRawPointer(nul))
        }
        guard let end else { throw fail("unterminated key") }
        offset = end + 1
    }

    mutating func objectId() throws -> ObjectID {
        try need(12)
        defer { offset += 12 }
        return withBytes(offset..<offset + 12) { ObjectID(rawBytes: UnsafeRawBufferPointer($0)) }
    }

    /// Moves past the value of an element of `type`, positioned after its name, checking it as `readValue` does
    /// but building nothing for the common types.
    @inlinable
    public mutating func skipValue(type: UInt8) throws {
        switch type {
        case 0x01, 0x09, 0x11, 0x12: try skip(8)
        case 0x02: _ = try stringRange()
        case 0x03, 0x04: try readElements { reader, type in
                try reader.skipCString()
                try reader.skipValue(type: type)
            }
        case 0x07: try skip(12)
        case 0x08: try skip(1)
        case 0x0A: break
        case 0x10: try skip(4)
        default: _ = try readValue(type: type)
        }
    }

    @usableFromInline @inline(__always)
    mutating func skip(_ n: Int) throws {
        try need(n)
        offset += n
    }

    /// Moves past the value of an element of `type` as `skipValue` does, except that an embedded document or
    /// array is passed by its length: only that it lies within the buffer and ends with its terminator is checked,
    /// not its elements. For values nothing reads.
    public mutating func skipValueByLength(type: UInt8) throws {
        guard type == 0x03 || type == 0x04 else { return try skipValue(type: type) }
        let len = Int(try le(Int32.self))
        guard len >= 5 else { throw fail("bad document length \(len)") }
        try need(len - 4)
        guard bytes[offset + len - 5] == 0 else { throw fail("document does not end where its length says") }
        offset += len - 4
    }

    /// The embedded document that starts here, kept as bytes (shared with this reader's buffer, not copied); the
    /// reader moves past it. With `checkingElements` it is checked as `readDocument` would; without, only its
    /// length and terminator are (for a document whose reader checks it as it reads: `EncodedBSONDocument.decoded`
    /// and the JSON writer do).
    public mutating func readEncodedDocument(checkingElements: Bool = true) throws -> EncodedBSONDocument {
        let start = offset
        if checkingElements { try skipValue(type: 0x03) } else { try skipValueByLength(type: 0x03) }
        return EncodedBSONDocument(storage: bytes, range: start..<offset)
    }

    /// Decodes the embedded document that starts here.
    public mutating func readDocument() throws -> BSONDocument {
        var fields: [(key: String, value: BSONValue)] = []
        fields.reserveCapacity(8)
        try readElements { reader, type in
            let key = try reader.cstring()
            fields.append((key: key, value: try reader.readValue(type: type)))
        }
        return BSONDocument(fields)
    }

    /// An array's values; its element names are positions, which the value model does not keep.
    mutating func readArray() throws -> [BSONValue] {
        var values: [BSONValue] = []
        try readElements { reader, type in
            try reader.skipCString()
            values.append(try reader.readValue(type: type))
        }
        return values
    }

    /// Reads a document's (or array's) length, then hands each element's type to `element`, positioned at its name.
    @inlinable
    public mutating func readElements(_ element: (inout BSONReader, UInt8) throws -> Void) throws {
        guard depth < Self.maxDepth else { throw fail("documents nested deeper than \(Self.maxDepth) levels") }
        depth += 1
        defer { depth -= 1 }
        let start = offset
        let len = Int(try le(Int32.self))
        guard len >= 5, start + len <= bytes.count else { throw fail("bad document length \(len)") }
        let end = start + len - 1
        while offset < end {
            try element(&self, try u8())
        }
        guard offset == end, try u8() == 0 else { throw fail("document does not end where its length says") }
    }

    /// Decodes the value of an element of `type`, positioned after its name.
    public mutating func readValue(type: UInt8) throws -> BSONValue {
        switch type {
        case 0x01: return .double(Double(bitPattern: try le(UInt64.self)))
        case 0x02: return .string(try string())
        case 0x03: return .document(try readDocument())
        case 0x04: return .array(try readArray())
        case 0x05:
            let len = Int(try le(Int32.self))
            let subtype = try u8()
            guard len >= 0 else { throw fail("bad binary length") }
            return .binary(subtype: subtype, data: try raw(len))
        case 0x06: return .undefined
        case 0x07: return .objectId(try objectId())
        case 0x08: return .bool(try u8() != 0)
        case 0x09: return .datetime(try le(Int64.self))
        case 0x0A: return .null
        case 0x0B: return .regex(pattern: try cstring(), options: try cstring())
        case 0x0C: return .dbPointer(namespace: try string(), id: try objectId())
        case 0x0D: return .javascript(try string())
        case 0x0E: return .symbol(try string())
        case 0x0F:
            _ = try le(Int32.self)
            return .javascriptWithScope(code: try string(), scope: try readDocument())
        case 0x10: return .int32(try le(Int32.self))
        case 0x11:
            let increment = try le(UInt32.self)
            return .timestamp(seconds: try le(UInt32.self), increment: increment)
        case 0x12: return .int64(try le(Int64.self))
        case 0x13:
            let low = try le(UInt64.self)
            return .decimal128(Decimal128(low: low, high: try le(UInt64.self)))
        case 0xFF: return .minKey
        case 0x7F: return .maxKey
        default: throw fail("unknown BSON type 0x\(hexString([type]))")
        }
    }
}

/// Appends BSON bytes for Swift values.
enum BSONWriter {
    /// Appends an integer, little-endian.
    static func le<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        for i in 0..<MemoryLayout<T>.size { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }

    /// Appends a NUL-terminated key (NULs inside are dropped: BSON keys cannot hold them).
    static func cstring(_ s: String, _ out: inout [UInt8]) {
        // A name without NUL (every usual one) is appended as it is, without a filtered copy.
        if s.utf8.contains(0) { out.append(contentsOf: s.utf8.filter { $0 != 0 }) } else { out.append(contentsOf: s.utf8) }
        out.append(0)
    }

    /// Appends a length-prefixed string.
    static func string(_ s: String, _ out: inout [UInt8]) {
        le(Int32(s.utf8.count + 1), &out)
        out.append(contentsOf: s.utf8)
        out.append(0)
    }

    /// Appends a document.
    static func writeDocument(_ doc: BSONDocument, into out: inout [UInt8]) {
        writeFields(doc.fields.lazy.map { ($0.key, $0.value) }, into: &out)
    }

    /// Appends key/value pairs as a document (arrays are documents with keys 0, 1, …).
    static func writeFields<S: Sequence>(_ fields: S, into out: inout [UInt8]) where S.Element == (String, BSONValue) {
        let start = out.count
        le(Int32(0), &out)
        for (key, value) in fields {
            out.append(typeByte(value))
            cstring(key, &out)
            writeValue(value, into: &out)
        }
        out.append(0)
        let len = Int32(out.count - start)
        for i in 0..<4 { out[start + i] = UInt8(truncatingIfNeeded: len >> (8 * i)) }
    }

    /// The BSON type byte of a value.
    static func typeByte(_ v: BSONValue) -> UInt8 {
        switch v {
        case .double: 0x01
        case .string: 0x02
        case .document: 0x03
        case .array: 0x04
        case .binary: 0x05
        case .undefined: 0x06
        case .objectId: 0x07
        case .bool: 0x08
        case .datetime: 0x09
        case .null: 0x0A
        case .regex: 0x0B
        case .dbPointer: 0x0C
        case .javascript: 0x0D
        case .symbol: 0x0E
        case .javascriptWithScope: 0x0F
        case .int32: 0x10
        case .timestamp: 0x11
        case .int64: 0x12
        case .decimal128: 0x13
        case .minKey: 0xFF
        case .maxKey: 0x7F
        }
    }

    /// Appends a value's payload (without type byte and key).
    static func writeValue(_ v: BSONValue, into out: inout [UInt8]) {
        switch v {
        case .double(let d): le(d.bitPattern, &out)
        case .string(let s), .javascript(let s), .symbol(let s): string(s, &out)
        case .document(let d): writeDocument(d, into: &out)
        case .array(let a): writeFields(a.enumerated().lazy.map { (String($0.offset), $0.element) }, into: &out)
        case .binary(let subtype, let data):
            le(Int32(data.count), &out)
            out.append(subtype)
            out.append(contentsOf: data)
        case .undefined, .null, .minKey, .maxKey: break
        case .objectId(let oid): oid.withBytes { out.append(contentsOf: $0) }
        case .bool(let b): out.append(b ? 1 : 0)
        case .datetime(let ms): le(ms, &out)
        case .regex(let pattern, let options):
            cstring(pattern, &out)
            cstring(options, &out)
        case .dbPointer(let ns, let id):
            string(ns, &out)
            id.withBytes { out.append(contentsOf: $0) }
        case .javascriptWithScope(let code, let scope):
            let start = out.count
            le(Int32(0), &out)
            string(code, &out)
            writeDocument(scope, into: &out)
            let len = Int32(out.count - start)
            for i in 0..<4 { out[start + i] = UInt8(truncatingIfNeeded: len >> (8 * i)) }
        case .int32(let i): le(i, &out)
        case .timestamp(let seconds, let increment):
            le(increment, &out)
            le(seconds, &out)
        case .int64(let i): le(i, &out)
        case .decimal128(let d):
            le(d.low, &out)
            le(d.high, &out)
        }
    }
}
