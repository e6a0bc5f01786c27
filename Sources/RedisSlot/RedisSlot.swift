/// Redis Cluster's key-to-slot mapping: 16,384 slots; a key's slot is the CRC16 (XMODEM) of its hash tag, or of the
/// whole key when it has none, modulo 16,384.
///
/// The hash tag is the text between the first `{` and the first `}` after it, when that text is not empty:
/// `{user:1}:a` and `{user:1}:b` share a slot, `{}x` and `a{b` are hashed whole.
public enum RedisSlot {
    /// How many slots a cluster has.
    public static let count = 16384

    /// The slot of `key`.
    public static func of(_ key: String) -> Int {
        var key = key
        return key.withUTF8 { of(utf8: $0) }
    }

    /// The slot of a key given as bytes. (Inlinable, as the two below, so that callers in other modules get code
    /// specialised for their collection type instead of the generic one, which is several times slower.)
    @inlinable
    public static func of(utf8 key: some Collection<UInt8>) -> Int {
        let hashed = hashTag(key) ?? key[...]
        return Int(crc16(hashed) & 0x3FFF)
    }

    /// The bytes of `key`'s hash tag, or `nil` when it has none.
    @inlinable
    public static func hashTag<C: Collection<UInt8>>(_ key: C) -> C.SubSequence? {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return nil }
        let afterOpen = key.index(after: open)
        guard let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close != afterOpen else { return nil }
        return key[afterOpen..<close]
    }

    /// Whether `key` has a hash tag (so every key with the same tag shares its slot).
    public static func hasHashTag(_ key: String) -> Bool {
        var key = key
        return key.withUTF8 { hashTag($0) != nil }
    }

    /// A short text (digits and lowercase letters) whose CRC16 falls in `slot`: `{tag}` put in front of any key
    /// moves that key to `slot`.
    public static func tag(forSlot slot: Int) -> String {
        tags[slot]
    }

    /// The first base-36 number whose text hashes to each slot (every slot is reached before 200,000).
    private static let tags: [String] = {
        var found = [String?](repeating: nil, count: count)
        var missing = count
        var n = 0
        while missing > 0 {
            let text = String(n, radix: 36)
            let slot = of(utf8: Array(text.utf8))
            if found[slot] == nil {
                found[slot] = text
                missing -= 1
            }
            n += 1
        }
        return found.map { $0! }
    }()

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection, as the cluster specification uses.
    @inlinable
    static func crc16(_ bytes: some Collection<UInt8>) -> UInt16 {
        table.withUnsafeBufferPointer { table in
            var crc: UInt16 = 0
            for byte in bytes {
                crc = (crc << 8) ^ table[Int((crc >> 8) ^ UInt16(byte))]
            }
            return crc
        }
    }

    @usableFromInline
    static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
