import Foundation

/// One BSON value, as a plain Swift value with no C behind it.
public enum BSONValue: Sendable, Hashable {
    /// A 64-bit binary floating point number.
    case double(Double)
    /// A UTF-8 string.
    case string(String)
    /// An embedded document.
    case document(BSONDocument)
    /// An array.
    case array([BSONValue])
    /// Binary data with its subtype (4 is a UUID).
    case binary(subtype: UInt8, data: [UInt8])
    /// The deprecated undefined value.
    case undefined
    /// The 12 bytes of an ObjectId.
    case objectId(ObjectID)
    /// A boolean.
    case bool(Bool)
    /// Milliseconds since the Unix epoch, UTC.
    case datetime(Int64)
    /// Null.
    case null
    case regex(pattern: String, options: String)
    case dbPointer(namespace: String, id: ObjectID)
    /// JavaScript code.
    case javascript(String)
    /// The deprecated symbol type.
    case symbol(String)
    case javascriptWithScope(code: String, scope: BSONDocument)
    /// A 32-bit integer.
    case int32(Int32)
    /// A BSON Timestamp: seconds and increment.
    case timestamp(seconds: UInt32, increment: UInt32)
    /// A 64-bit integer.
    case int64(Int64)
    /// A 128-bit decimal.
    case decimal128(Decimal128)
    /// Compares lower than every other value.
    case minKey
    /// Compares higher than every other value.
    case maxKey
}

/// An ObjectId: 12 bytes, held inline (decoding one allocates nothing).
public struct ObjectID: Sendable, Hashable, CustomStringConvertible {
    /// The 12 bytes as they lie in memory: the first eight, then the last four.
    private let first8: UInt64
    private let last4: UInt32

    /// Wraps 12 raw bytes; `nil` when the count is wrong.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 12 else { return nil }
        self = bytes.withUnsafeBytes { ObjectID(rawBytes: $0) }
    }

    /// The ObjectId in the first 12 bytes of `raw`, which must hold at least 12.
    public init(rawBytes raw: UnsafeRawBufferPointer) {
        precondition(raw.count >= 12, "an ObjectId needs 12 bytes")
        first8 = raw.loadUnaligned(as: UInt64.self)
        last4 = raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
    }

    /// Calls `body` with the 12 raw bytes.
    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let pair = (first8, last4)
        return try withUnsafeBytes(of: pair) { raw in
            try body(UnsafeBufferPointer(rebasing: raw.bindMemory(to: UInt8.self)[..<12]))
        }
    }

    /// The 12 raw bytes.
    public var bytes: [UInt8] { withBytes { Array($0) } }

    /// Parses 24 hexadecimal digits (either case); `nil` otherwise.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 24 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(12)
        var i = 0
        while i < 24 {
            guard let hi = hexNibble(utf8[i]), let lo = hexNibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self.init(bytes: out)
    }

    /// 24 lowercase hexadecimal digits.
    public var hex: String { withBytes { hexString($0) } }

    /// Same as `hex`.
    public var description: String { hex }
}

/// A Decimal128 value in its IEEE 754-2008 BID encoding (low and high 64 bits).
public struct Decimal128: Sendable, Hashable {
    /// Low 64 bits.
    public let low: UInt64
    /// High 64 bits.
    public let high: UInt64

    /// Wraps the two halves of the encoding.
    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }
}

/// The value of one hexadecimal digit, or `nil`.
func hexNibble(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// Lowercase hexadecimal text of some bytes.
public func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    String(unsafeUninitializedCapacity: 2 * bytes.count) { writeHex(bytes, into: $0) }
}

/// Writes the lowercase hexadecimal digits of some bytes at the start of `out`, which must have room for two per
/// byte; returns how many it wrote.
@inlinable
@discardableResult
public func writeHex<C: Collection>(_ bytes: C, into out: UnsafeMutableBufferPointer<UInt8>) -> Int
    where C.Element == UInt8 {
    precondition(out.count >= 2 * bytes.count, "no room for the hexadecimal digits")
    let digits: StaticString = "0123456789abcdef"
    var index = 0
    for b in bytes {
        out[index] = digits.utf8Start[Int(b >> 4)]
        out[index + 1] = digits.utf8Start[Int(b & 0x0f)]
        index += 2
    }
    return index
}
