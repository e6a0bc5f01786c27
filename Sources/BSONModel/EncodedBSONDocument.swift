import Foundation

/// A BSON document kept as its bytes — possibly a range of a larger buffer, shared without copying — and decoded
/// only on demand: the form a change event's `fullDocument` takes on the way to its Extended JSON.
public struct EncodedBSONDocument: Sendable, Hashable {
    private let storage: [UInt8]
    private let range: Range<Int>

    /// The bytes of `document`.
    public init(_ document: BSONDocument) {
        storage = document.bsonBytes()
        range = storage.indices
    }

    /// The document at `range` of `storage`, whose length and terminator the caller has checked.
    init(storage: [UInt8], range: Range<Int>) {
        self.storage = storage
        self.range = range
    }

    /// The document at `range` of `storage`, sharing the buffer; `nil` unless `range` lies within it, starts with
    /// its own length and ends with a terminator (the elements are not checked: they were, where the range came
    /// from).
    public init?(sharing storage: [UInt8], range: Range<Int>) {
        guard range.lowerBound >= 0, range.upperBound <= storage.count, range.count >= 5, storage[range.upperBound - 1] == 0,
              storage.withUnsafeBytes({ Int32(littleEndian: $0.loadUnaligned(fromByteOffset: range.lowerBound, as: Int32.self)) })
                == range.count else { return nil }
        self.init(storage: storage, range: range)
    }

    /// The document's BSON bytes.
    public var bytes: ArraySlice<UInt8> { storage[range] }

    /// The buffer the document lies in, shared, and where in it (`bytes` is `storage[range]`).
    public var buffer: (storage: [UInt8], range: Range<Int>) { (storage, range) }

    /// A reader positioned at the document's first byte (its length).
    public var reader: BSONReader { BSONReader(bytes: storage, offset: range.lowerBound) }

    /// The decoded document.
    public func decoded() throws -> BSONDocument {
        var reader = reader
        return try reader.readDocument()
    }

    /// The value of the first field named `key`, decoding nothing else; `nil` when there is none (or the bytes
    /// are not a valid document).
    public subscript(key: String) -> BSONValue? {
        var key = key
        return key.withUTF8 { name in
            var reader = reader
            var found: BSONValue?
            do {
                try reader.readElements { reader, type in
                    let nameRange = try reader.cstringRange()
                    let matches = found == nil && nameRange.count == name.count && (name.isEmpty
                        || reader.withBytes(nameRange) { memcmp($0.baseAddress!, name.baseAddress!, name.count) } == 0)
                    if matches { found = try reader.readValue(type: type) } else { try reader.skipValue(type: type) }
                }
            } catch {
                return nil
            }
            return found
        }
    }

    /// Equal when the bytes are.
    public static func == (lhs: EncodedBSONDocument, rhs: EncodedBSONDocument) -> Bool {
        lhs.bytes.elementsEqual(rhs.bytes)
    }

    /// Hashes the bytes, matching `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(range.count)
        for byte in bytes { hasher.combine(byte) }
    }
}
