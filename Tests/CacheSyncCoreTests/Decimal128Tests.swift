import BSONModel
import Testing

/// A Decimal128 bit pattern and its canonical string.
struct DecimalVector: Sendable, CustomTestStringConvertible {
    let high: UInt64
    let low: UInt64
    let text: String

    var testDescription: String { text }
}

@Suite("Decimal128 text")
struct Decimal128Tests {
    static let vectors: [DecimalVector] = [
        DecimalVector(high: 0x3040_0000_0000_0000, low: 0, text: "0"),
        DecimalVector(high: 0xB040_0000_0000_0000, low: 0, text: "-0"),
        DecimalVector(high: 0x3040_0000_0000_0000, low: 1, text: "1"),
        DecimalVector(high: 0xB040_0000_0000_0000, low: 1, text: "-1"),
        DecimalVector(high: 0x3042_0000_0000_0000, low: 123, text: "1.23E+3"),
        DecimalVector(high: 0x3040_0000_0000_0000, low: 12_345_678_901_234_567, text: "12345678901234567"),
        DecimalVector(high: 0x303C_0000_0000_0000, low: 1999, text: "19.99"),
        DecimalVector(high: 0x3034_0000_0000_0000, low: 1234, text: "0.001234"),
        DecimalVector(high: 0x302E_0000_0000_0000, low: 1234, text: "0.000001234"),
        DecimalVector(high: 0x302C_0000_0000_0000, low: 1234, text: "1.234E-7"),
        DecimalVector(high: 0xB02C_0000_0000_0000, low: 100, text: "-1.00E-8"),
        DecimalVector(high: 0x3046_0000_0000_0000, low: 0, text: "0E+3"),
        DecimalVector(high: 0x0000_0000_0000_0000, low: 0, text: "0E-6176"),
        DecimalVector(high: 0x0000_0000_0000_0000, low: 1, text: "1E-6176"),
        DecimalVector(high: 0x5FFE_314D_C644_8D93, low: 0x38C1_5B0A_0000_0000, text: "1.000000000000000000000000000000000E+6144"),
        DecimalVector(high: 0x5FFF_ED09_BEAD_87C0, low: 0x378D_8E63_FFFF_FFFF, text: "9.999999999999999999999999999999999E+6144"),
        DecimalVector(high: 0x7800_0000_0000_0000, low: 0, text: "Infinity"),
        DecimalVector(high: 0xF800_0000_0000_0000, low: 0, text: "-Infinity"),
        DecimalVector(high: 0x7C00_0000_0000_0000, low: 0, text: "NaN"),
    ]

    @Test("bit patterns print as the spec's canonical strings", arguments: vectors)
    func toString(_ v: DecimalVector) {
        #expect(Decimal128(low: v.low, high: v.high).description == v.text)
    }

    @Test("canonical strings parse back to the same bits", arguments: vectors)
    func parse(_ v: DecimalVector) throws {
        let parsed = try #require(Decimal128(v.text))
        #expect(parsed == Decimal128(low: v.low, high: v.high))
    }

    @Test("NaN ignores sign and payload; signalling NaN prints NaN")
    func nanVariants() {
        #expect(Decimal128(low: 0, high: 0xFC00_0000_0000_0000).description == "NaN")
        #expect(Decimal128(low: 12, high: 0x7E00_0000_0000_0000).description == "NaN")
    }

    @Test("non-canonical coefficients read as zero with their exponent")
    func nonCanonical() {
        #expect(Decimal128(low: 0, high: 0x6C10_0000_0000_0000).description == "0")
        #expect(Decimal128(low: 0x378D_8E64_0000_0000, high: 0x3041_ED09_BEAD_87C0).description == "0")
    }

    @Test("parsing clamps exponents exactly and normalises equivalent spellings", arguments: [
        ("1E+6144", "1.000000000000000000000000000000000E+6144"),
        ("1e3", "1E+3"),
        ("+12.30", "12.30"),
        ("-.5", "-0.5"),
        ("0.000000", "0.000000"),
        ("0E+9999", "0E+6111"),
        ("0E-9999", "0E-6176"),
        ("-Inf", "-Infinity"),
        ("inf", "Infinity"),
        ("-NaN", "NaN"),
        ("10000000000000000000000000000000000000E-4", "1000000000000000000000000000000000"),
    ])
    func parseForms(text: String, canonical: String) throws {
        #expect(try #require(Decimal128(text)).description == canonical)
    }

    @Test("inexact or malformed text does not parse", arguments: [
        "", "abc", "1.2.3", "1E", "E5", "--1", "1E+7000", "1E-7000", "12345678901234567890123456789012345", "0x10",
    ])
    func rejects(text: String) {
        #expect(Decimal128(text) == nil)
    }
}
