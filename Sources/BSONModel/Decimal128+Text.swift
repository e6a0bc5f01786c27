/// Text form of a Decimal128: the MongoDB "Decimal128 to string" algorithm and a parser for exact values.
extension Decimal128: CustomStringConvertible, LosslessStringConvertible {
    private static let exponentBias = 6176
    private static let maxExponent = 6111
    private static let minExponent = -6176
    private static let maxDigits = 34

    /// Positive infinity.
    public static let infinity = Decimal128(low: 0, high: 0x7800_0000_0000_0000)
    /// Negative infinity.
    public static let negativeInfinity = Decimal128(low: 0, high: 0xF800_0000_0000_0000)
    /// A quiet NaN.
    public static let nan = Decimal128(low: 0, high: 0x7C00_0000_0000_0000)

    /// A finite value `(-1)^negative × coefficient × 10^exponent`; `nil` if it does not fit exactly.
    public init?(negative: Bool, exponent: Int, coefficientHigh: UInt64, coefficientLow: UInt64) {
        var digits = Decimal128.decimalDigits(high: coefficientHigh, low: coefficientLow)
        var exponent = exponent
        if digits == "0" {
            exponent = min(max(exponent, Decimal128.minExponent), Decimal128.maxExponent)
        }
        while digits.count > Decimal128.maxDigits || exponent < Decimal128.minExponent, digits.hasSuffix("0"), digits != "0" {
            digits.removeLast()
            exponent += 1
        }
        while exponent > Decimal128.maxExponent, digits.count < Decimal128.maxDigits, digits != "0" {
            digits.append("0")
            exponent -= 1
        }
        guard digits.count <= Decimal128.maxDigits,
              (Decimal128.minExponent...Decimal128.maxExponent).contains(exponent),
              let (high, low) = Decimal128.coefficient(fromDigits: Array(digits.utf8)) else { return nil }
        let biased = UInt64(exponent + Decimal128.exponentBias)
        self.init(low: low, high: (negative ? 1 << 63 : 0) | biased << 49 | high)
    }

    /// Parses `NaN`, `[+-]Inf[inity]` or `[+-]digits[.digits][E[+-]digits]`; `nil` if not exactly representable.
    public init?(_ text: String) {
        var bytes = Array(text.utf8)[...]
        var negative = false
        if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            bytes = bytes.dropFirst()
        }
        let word = String(decoding: bytes, as: UTF8.self).lowercased()
        if word == "nan" {
            self = .nan
            return
        }
        if word == "inf" || word == "infinity" {
            self = negative ? .negativeInfinity : .infinity
            return
        }
        var digits = [UInt8]()
        var exponent = 0
        var sawPoint = false
        var sawDigit = false
        while let c = bytes.first, c != UInt8(ascii: "e"), c != UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if c == UInt8(ascii: ".") {
                guard !sawPoint else { return nil }
                sawPoint = true
            } else if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) {
                sawDigit = true
                if sawPoint { exponent -= 1 }
                if !(digits.isEmpty && c == UInt8(ascii: "0")) { digits.append(c) }
            } else {
                return nil
            }
        }
        guard sawDigit else { return nil }
        if !bytes.isEmpty {
            bytes = bytes.dropFirst()
            guard let e = Int(String(decoding: bytes, as: UTF8.self)), abs(e) < 100_000 else { return nil }
            exponent += e
        }
        while digits.count > Decimal128.maxDigits, digits.last == UInt8(ascii: "0") {
            digits.removeLast()
            exponent += 1
        }
        guard digits.count <= Decimal128.maxDigits,
              let (high, low) = Decimal128.coefficient(fromDigits: digits) else { return nil }
        self.init(negative: negative, exponent: exponent, coefficientHigh: high, coefficientLow: low)
    }

    /// The canonical string, e.g. `1.23E+3`, `-0`, `0.001`, `Infinity`, `NaN`.
    public var description: String {
        let negative = high >> 63 == 1
        let sign = negative ? "-" : ""
        let combination = (high >> 58) & 0x1F
        let exponent: Int
        var coefficientHigh: UInt64 = 0
        var coefficientLow: UInt64 = 0
        if combination >> 3 == 0b11 {
            if combination == 0x1E { return sign + "Infinity" }
            if combination == 0x1F { return "NaN" }
            // The implicit "100" prefix makes the coefficient exceed 10^34 - 1, which reads as zero.
            exponent = Int((high >> 47) & 0x3FFF) - Decimal128.exponentBias
        } else {
            exponent = Int((high >> 49) & 0x3FFF) - Decimal128.exponentBias
            coefficientHigh = high & 0x1_FFFF_FFFF_FFFF
            coefficientLow = low
            if coefficientHigh > 0x1_ED09_BEAD_87C0 || (coefficientHigh == 0x1_ED09_BEAD_87C0 && low > 0x378D_8E63_FFFF_FFFF) {
                coefficientHigh = 0
                coefficientLow = 0
            }
        }
        let digits = Array(Decimal128.decimalDigits(high: coefficientHigh, low: coefficientLow).utf8)
        let adjusted = exponent + digits.count - 1
        var out = sign
        if exponent <= 0 && adjusted >= -6 {
            if exponent == 0 {
                out += String(decoding: digits, as: UTF8.self)
            } else if digits.count > -exponent {
                let split = digits.count + exponent
                out += String(decoding: digits[..<split], as: UTF8.self) + "." + String(decoding: digits[split...], as: UTF8.self)
            } else {
                out += "0." + String(repeating: "0", count: -exponent - digits.count) + String(decoding: digits, as: UTF8.self)
            }
        } else {
            out += String(decoding: digits[..<1], as: UTF8.self)
            if digits.count > 1 { out += "." + String(decoding: digits[1...], as: UTF8.self) }
            out += "E" + (adjusted >= 0 ? "+" : "") + String(adjusted)
        }
        return out
    }

    /// Decimal digits of a 128-bit unsigned integer, without leading zeros (`"0"` for zero).
    private static func decimalDigits(high: UInt64, low: UInt64) -> String {
        var words: [UInt64] = [high >> 32, high & 0xFFFF_FFFF, low >> 32, low & 0xFFFF_FFFF]
        var chunks: [UInt64] = []
        repeat {
            var remainder: UInt64 = 0
            for i in words.indices {
                let current = remainder << 32 | words[i]
                words[i] = current / 1_000_000_000
                remainder = current % 1_000_000_000
            }
            chunks.append(remainder)
        } while words.contains(where: { $0 != 0 })
        var out = String(chunks.removeLast())
        for chunk in chunks.reversed() {
            let text = String(chunk)
            out += String(repeating: "0", count: 9 - text.count) + text
        }
        return out
    }

    /// The 128-bit integer of some ASCII digits (at most 34 of them).
    private static func coefficient(fromDigits digits: [UInt8]) -> (UInt64, UInt64)? {
        var high: UInt64 = 0
        var low: UInt64 = 0
        for c in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { return nil }
            let product = low.multipliedFullWidth(by: 10)
            let (sum, carry) = product.low.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            low = sum
            high = high &* 10 &+ product.high &+ (carry ? 1 : 0)
        }
        return (high, low)
    }
}
