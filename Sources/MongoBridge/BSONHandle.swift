import BSONModel
import CMongoc

/// Owns one libbson `bson_t`; frees it on deinit.
public final class BSONHandle: @unchecked Sendable {
    private let handle: OpaquePointer

    /// Takes ownership of a `bson_t*` that the caller allocated.
    init(taking handle: OpaquePointer) {
        self.handle = handle
    }

    /// Copies a `bson_t*` owned by libmongoc (valid only until its owner's next call).
    convenience init(copying borrowed: OpaquePointer) {
        self.init(taking: cs_bson_copy(borrowed))
    }

    /// Builds a libbson document from a Swift document.
    public convenience init(_ document: BSONDocument) {
        let bytes = document.bsonBytes()
        let made = bytes.withUnsafeBufferPointer { bson_new_from_data($0.baseAddress, $0.count) }
        // bsonBytes() always yields a well-formed document, so libbson accepts it.
        self.init(taking: made!)
    }

    /// Parses (canonical or relaxed) Extended JSON with libbson.
    public convenience init(json: String) throws {
        var error = bson_error_t()
        let made = json.withCString { bson_new_from_json(UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), -1, &error) }
        guard let made else { throw MongoError(bsonError: error, context: "parsing Extended JSON") }
        self.init(taking: made)
    }

    deinit {
        bson_destroy(handle)
    }

    /// Lends the raw pointer to `body`; it must not escape.
    func withUnsafeHandle<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        try body(handle)
    }

    /// The document's BSON bytes.
    public var bytes: [UInt8] {
        Self.bytes(ofBorrowed: handle)
    }

    /// The BSON bytes of a `bson_t` this wrapper does not own (one copy, no intermediate `bson_t`).
    static func bytes(ofBorrowed borrowed: OpaquePointer) -> [UInt8] {
        var len: UInt32 = 0
        guard let data = cs_bson_data(borrowed, &len) else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: Int(len)))
    }

    /// The document as a Swift value.
    public func document() throws -> BSONDocument {
        try BSONDocument(bsonBytes: bytes)
    }

    /// libbson's own relaxed Extended JSON text (with its spacing).
    public var relaxedExtendedJSON: String {
        guard let text = bson_as_relaxed_extended_json(handle, nil) else { return "" }
        defer { bson_free(text) }
        return String(cString: text)
    }

    /// libbson's own canonical Extended JSON text.
    public var canonicalExtendedJSON: String {
        guard let text = bson_as_canonical_extended_json(handle, nil) else { return "" }
        defer { bson_free(text) }
        return String(cString: text)
    }
}

extension BSONDocument {
    /// Builds a document through libbson's parser from Extended JSON.
    public init(extendedJSON json: String) throws {
        self = try BSONHandle(json: json).document()
    }
}
