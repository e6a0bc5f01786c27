import BSONModel
import Foundation

/// The canonical key text of a `documentKey._id` (docs/ARCHITECTURE.md §4 "Keys"), and its reverse for the read-through API.
public enum DocumentID {
    /// The text `{id}` stands for in a key; equal `_id`s (`1`, `1.0`, `Int64(1)`) give the same text.
    ///
    /// Strings are themselves, except that a string holding `\n`, `\r` or NUL, or starting with `%`, becomes
    /// `%` + its percent-encoding of `%`, `\n`, `\r`, NUL: keys never hold those bytes and the mapping stays injective.
    public static func keyText(_ id: BSONValue) -> String {
        switch id {
        case .string(let s): return escapedString(s)
        case .objectId(let oid): return oid.hex
        case .int32(let i): return String(i)
        case .int64(let i): return String(i)
        case .double(let d): return doubleText(d)
        case .decimal128(let d): return d.description
        case .binary(4, let data) where data.count == 16: return uuidText(data)
        case .binary(_, let data): return Data(data).base64EncodedString()
        case .datetime(let ms): return ExtendedJSON.isoDate(milliseconds: ms) ?? ExtendedJSON.relaxed(id)
        default: return ExtendedJSON.relaxed(id)
        }
    }

    /// Calls `body` with the UTF-8 of `keyText(id)`: an ObjectId's digits are written on the stack instead of
    /// into a `String` (the key of every event of a collection keyed by ObjectId is built this way).
    static func withKeyText<R>(_ id: BSONValue, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if case .objectId(let oid) = id {
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { digits in
                _ = oid.withBytes { writeHex($0, into: digits) }
                return body(UnsafeBufferPointer(digits))
            }
        }
        var text = keyText(id)
        return text.withUTF8(body)
    }

    /// The `_id` value for `text` (the id itself, already URL-decoded) under a collection's `idType`.
    ///
    /// `auto`: 24 hexadecimal digits → ObjectId; a canonical integer (no sign `+`, no leading zeros) that fits
    /// Int64 → int32 or int64; anything else → string. So `keyText(parse(t, .auto)) == t` for unescaped texts.
    public static func parse(_ text: String, idType: IDType) throws(DocumentIDError) -> BSONValue {
        switch idType {
        case .string:
            return .string(text)
        case .objectId:
            guard let oid = ObjectID(hex: text) else {
                throw DocumentIDError(text: text, idType: idType, expected: "24 hexadecimal digits")
            }
            return .objectId(oid)
        case .int:
            guard let value = Int64(text) else {
                throw DocumentIDError(text: text, idType: idType, expected: "an integer between -2^63 and 2^63-1")
            }
            return integer(value)
        case .uuid:
            guard let bytes = uuidBytes(text) else {
                throw DocumentIDError(text: text, idType: idType, expected: "a UUID like 123e4567-e89b-12d3-a456-426614174000")
            }
            return .binary(subtype: 4, data: bytes)
        case .auto:
            if let oid = ObjectID(hex: text) { return .objectId(oid) }
            if isCanonicalInteger(text), let value = Int64(text) { return integer(value) }
            return .string(text)
        }
    }

    private static func integer(_ value: Int64) -> BSONValue {
        if let small = Int32(exactly: value) { return .int32(small) }
        return .int64(value)
    }

    /// `-?(0|[1-9][0-9]*)`, and not `-0`.
    private static func isCanonicalInteger(_ text: String) -> Bool {
        var digits = Substring(text)
        if digits.hasPrefix("-") { digits = digits.dropFirst() }
        guard let first = digits.first, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        if first == "0" { return digits.count == 1 && !text.hasPrefix("-") }
        return true
    }

    private static func escapedString(_ s: String) -> String {
        // The first byte, not `hasPrefix("%")`: a `%` that a combining mark follows is one `Character` with it, and
        // left as it is it could be the key of an escaped string (`%\u{35D}%0A` of `\u{35D}\n`).
        let needsEscape = s.utf8.first == UInt8(ascii: "%")
            || s.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0x00 })
        guard needsEscape else { return s }
        var out = "%"
        for scalar in s.unicodeScalars {
            switch scalar {
            case "%": out += "%25"
            case "\n": out += "%0A"
            case "\r": out += "%0D"
            case "\0": out += "%00"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Integral doubles as exact decimal integers (`-0.0` → `0`), others as shortest round-trip text.
    private static func doubleText(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        guard d == d.rounded(.towardZero) else { return d.description }
        if let exact = Int64(exactly: d) { return String(exact) }
        return (d < 0 ? "-" : "") + exactIntegerText(d.magnitude)
    }

    /// The decimal digits of a finite integral double of at least 2^63 (exact, no exponent).
    private static func exactIntegerText(_ magnitude: Double) -> String {
        var chunks: [UInt64] = [magnitude.significandBitPattern | 1 << 52]
        for _ in 0..<(Int(magnitude.exponent) - 52) {
            var carry: UInt64 = 0
            for i in chunks.indices {
                let doubled = chunks[i] * 2 + carry
                chunks[i] = doubled % 1_000_000_000
                carry = doubled / 1_000_000_000
            }
            if carry > 0 { chunks.append(carry) }
        }
        var out = String(chunks.removeLast())
        for chunk in chunks.reversed() {
            let text = String(chunk)
            out += String(repeating: "0", count: 9 - text.count) + text
        }
        return out
    }

    private static func uuidText(_ bytes: [UInt8]) -> String {
        let hex = hexString(bytes)
        var out = ""
        for (index, c) in hex.enumerated() {
            if [8, 12, 16, 20].contains(index) { out.append("-") }
            out.append(c)
        }
        return out
    }

    /// 16 bytes from `8-4-4-4-12` hex (either case) or 32 plain hex digits.
    private static func uuidBytes(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(\.count)
        guard parts == [8, 4, 4, 4, 12] || parts == [32] else { return nil }
        return ObjectID.bytes(fromHex: text.filter { $0 != "-" })
    }
}
