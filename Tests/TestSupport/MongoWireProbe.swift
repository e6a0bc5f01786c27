/// Asks a MongoDB wire-protocol server on 127.0.0.1 whether it answers, with an `OP_MSG` `hello`.
public enum MongoWireProbe {
    /// Whether the server on `port` answers `{hello: 1, $db: "admin"}` with an `OP_MSG` reply saying `ok`.
    public static func hello(port: Int, timeout: Duration = .seconds(2)) -> Bool {
        guard let socket = TCPSocket(connectingTo: port, timeout: timeout) else { return false }
        defer { socket.close() }
        guard socket.write(helloMessage(requestID: 1)),
              let header = socket.read(exactly: 16)
        else { return false }
        let length = Int(littleEndian(header, at: 0))
        let opCode = littleEndian(header, at: 12)
        guard opCode == 2013, length > 21, length < 48 * 1024 * 1024,
              let body = socket.read(exactly: length - 16)
        else { return false }
        // Body: flagBits (4 bytes), section kind 0 (1 byte), then the reply document.
        let document = Array(body.dropFirst(5))
        return containsOK(document)
    }

    /// An `OP_MSG` carrying `{hello: 1, $db: "admin"}`.
    static func helloMessage(requestID: Int32) -> [UInt8] {
        var document: [UInt8] = []
        document += [0x10] + Array("hello".utf8) + [0] + bytes(Int32(1))
        document += [0x02] + Array("$db".utf8) + [0] + bytes(Int32(6)) + Array("admin".utf8) + [0]
        document = bytes(Int32(document.count + 5)) + document + [0]
        let body = bytes(UInt32(0)) + [0] + document
        return bytes(Int32(16 + body.count)) + bytes(requestID) + bytes(Int32(0)) + bytes(Int32(2013)) + body
    }

    /// Whether a BSON reply document has a top-level `ok` equal to 1 (as int32, int64 or double).
    static func containsOK(_ document: [UInt8]) -> Bool {
        var index = 4
        while index < document.count - 1 {
            let type = document[index]
            index += 1
            guard let nameEnd = document[index...].firstIndex(of: 0) else { return false }
            let name = String(decoding: document[index..<nameEnd], as: UTF8.self)
            index = nameEnd + 1
            let size: Int
            switch type {
            case 0x01, 0x09, 0x11, 0x12: size = 8
            case 0x10: size = 4
            case 0x08: size = 1
            case 0x0A: size = 0
            case 0x07: size = 12
            case 0x02, 0x0D, 0x0E: size = 4 + Int(littleEndian(document, at: index))
            case 0x03, 0x04: size = Int(littleEndian(document, at: index))
            case 0x05: size = 5 + Int(littleEndian(document, at: index))
            default: return false
            }
            guard index + size <= document.count else { return false }
            if name == "ok" {
                switch type {
                case 0x01: return Double(bitPattern: UInt64(littleEndian64(document, at: index))) == 1
                case 0x10: return littleEndian(document, at: index) == 1
                case 0x12: return littleEndian64(document, at: index) == 1
                default: return false
                }
            }
            index += size
        }
        return false
    }

    /// The little-endian bytes of an integer.
    private static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    /// The little-endian `Int32` at `offset`.
    private static func littleEndian(_ bytes: [UInt8], at offset: Int) -> Int32 {
        guard offset + 4 <= bytes.count else { return -1 }
        return (0..<4).reduce(Int32(0)) { $0 | Int32(bytes[offset + $1]) << (8 * $1) }
    }

    /// The little-endian `Int64` at `offset`.
    private static func littleEndian64(_ bytes: [UInt8], at offset: Int) -> Int64 {
        guard offset + 8 <= bytes.count else { return -1 }
        return (0..<8).reduce(Int64(0)) { $0 | Int64(bytes[offset + $1]) << (8 * $1) }
    }
}
