import BSONModel
import Foundation

/// Decoding a change event from its BSON document.
extension ChangeEvent {
    /// Decodes an event in the real MongoDB format, tolerating nx-27017 (date `clusterTime`, null `updateDescription`,
    /// `fullDocument` on delete).
    ///
    /// Document events (insert, update, replace, delete) need `documentKey._id`; `rename` needs `to`.
    /// A delete's `fullDocument` is dropped: a deleted document is never cached.
    public init(bson event: BSONDocument) throws(ChangeEventError) {
        var fields = TopLevelFields()
        for (var key, value) in event.fields {
            if let name = key.withUTF8(TopLevelFields.Name.init) { fields.set(name, value) }
        }
        try self.init(fields)
    }

    /// Which fields `init(bsonBytes:decoding:)` builds.
    public enum Decoding: Sendable {
        /// Every field of the model, as `init(bson:)`.
        case all
        /// What applying the event to the cache reads: `namespace` (`ns`) and `updateDescription` are checked to
        /// be well-formed BSON but left `nil` (a change stream watches one collection, and the cache is written
        /// from the document key and `fullDocument`).
        case forApplying
    }

    /// Decodes an event from its BSON bytes as `init(bson:)` does, in one pass over its top-level fields: fields
    /// the model does not read (and, `.forApplying`, those the applier does not read) are skipped, and the
    /// resume token, `documentKey` and `fullDocument` are checked but kept as bytes (shared with `bsonBytes`).
    public init(bsonBytes: [UInt8], decoding: Decoding = .all) throws {
        var reader = BSONReader(bytes: bsonBytes)
        var fields = TopLevelFields()
        try reader.readElements { reader, type in
            guard let name = reader.withBytes(try reader.cstringRange(), TopLevelFields.Name.init),
                  decoding == .all || (name != .ns && name != .updateDescription) else {
                try reader.skipValue(type: type)
                return
            }
            if type == 0x03, fields.keepsEncoded(name) {
                fields.setEncoded(name, try reader.readEncodedDocument())
            } else {
                fields.set(name, try reader.readValue(type: type))
            }
        }
        guard reader.offset == bsonBytes.count else {
            throw reader.fail("\(bsonBytes.count - reader.offset) trailing bytes after the event")
        }
        try self.init(fields)
    }

    /// The top-level fields the model reads, each the first of its name.
    private struct TopLevelFields {
        var id, operationType, clusterTime, wallTime, ns, to, documentKey, updateDescription, fullDocument: BSONValue?
        /// `_id`, `documentKey` and `fullDocument` when they were kept as bytes instead of decoded.
        var encodedID, encodedDocumentKey, encodedFullDocument: EncodedBSONDocument?

        /// Whether `name` is a document field kept as bytes that is not set yet.
        func keepsEncoded(_ name: Name) -> Bool {
            switch name {
            case .id: id == nil && encodedID == nil
            case .documentKey: documentKey == nil && encodedDocumentKey == nil
            case .fullDocument: fullDocument == nil && encodedFullDocument == nil
            default: false
            }
        }

        /// Keeps the bytes of `document` as the field `name` (one that `keepsEncoded`).
        mutating func setEncoded(_ name: Name, _ document: EncodedBSONDocument) {
            switch name {
            case .id: encodedID = document
            case .documentKey: encodedDocumentKey = document
            default: encodedFullDocument = document
            }
        }

        /// The name of a field the model reads.
        enum Name: CaseIterable {
            case id, operationType, clusterTime, wallTime, ns, to, documentKey, updateDescription, fullDocument

            /// The name of `key`, `nil` for a field the model does not read.
            init?(_ key: UnsafeBufferPointer<UInt8>) {
                guard let start = key.baseAddress else { return nil }
                for entry in Self.table where entry.bytes.count == key.count {
                    if entry.bytes.withUnsafeBytes({ memcmp($0.baseAddress!, start, key.count) }) == 0 {
                        self = entry.name
                        return
                    }
                }
                return nil
            }

            private static let table: [(name: Name, bytes: [UInt8])] = allCases.map { ($0, Array($0.text.utf8)) }

            private var text: String {
                switch self {
                case .id: "_id"
                case .operationType: "operationType"
                case .clusterTime: "clusterTime"
                case .wallTime: "wallTime"
                case .ns: "ns"
                case .to: "to"
                case .documentKey: "documentKey"
                case .updateDescription: "updateDescription"
                case .fullDocument: "fullDocument"
                }
            }
        }

        /// Keeps `value` as the field `name` unless that was already set.
        mutating func set(_ name: Name, _ value: BSONValue) {
            func keep(_ slot: inout BSONValue?) { if slot == nil { slot = value } }
            switch name {
            case .id: if encodedID == nil { keep(&id) }
            case .operationType: keep(&operationType)
            case .clusterTime: keep(&clusterTime)
            case .wallTime: keep(&wallTime)
            case .ns: keep(&ns)
            case .to: keep(&to)
            case .documentKey: if encodedDocumentKey == nil { keep(&documentKey) }
            case .updateDescription: keep(&updateDescription)
            case .fullDocument: if encodedFullDocument == nil { keep(&fullDocument) }
            }
        }
    }

    private init(_ event: TopLevelFields) throws(ChangeEventError) {
        var op: String?
        func missing(_ field: String) -> ChangeEventError { .missingField(field, operationType: op) }
        func wrong(_ field: String, _ expected: String, _ value: BSONValue) -> ChangeEventError {
            .wrongType(field, expected: expected, found: value.typeName, operationType: op)
        }

        guard let opValue = event.operationType else { throw missing("operationType") }
        guard case .string(let opName) = opValue else { throw wrong("operationType", "string", opValue) }
        op = opName
        let operationType = OperationType(opName)

        let token: EncodedBSONDocument
        if let encoded = event.encodedID {
            token = encoded
        } else {
            guard let tokenValue = event.id else { throw missing("_id (resume token)") }
            guard case .document(let tree) = tokenValue else { throw wrong("_id (resume token)", "document", tokenValue) }
            token = EncodedBSONDocument(tree)
        }

        var clusterTime: ClusterTime?
        switch event.clusterTime {
        case nil: clusterTime = nil
        case .timestamp(let seconds, let increment)?: clusterTime = .timestamp(seconds: seconds, increment: increment)
        case .datetime(let ms)?: clusterTime = .date(ms)
        case let other?: throw wrong("clusterTime", "timestamp or date", other)
        }

        var wallTime: Int64?
        switch event.wallTime {
        case nil, .null?: wallTime = nil
        case .datetime(let ms)?: wallTime = ms
        case let other?: throw wrong("wallTime", "date", other)
        }

        func namespace(_ field: String, _ value: BSONValue?) throws(ChangeEventError) -> Namespace? {
            guard let value else { return nil }
            guard case .document(let ns) = value else { throw wrong(field, "document", value) }
            guard let dbValue = ns["db"] else { throw missing("\(field).db") }
            guard case .string(let db) = dbValue else { throw wrong("\(field).db", "string", dbValue) }
            switch ns["coll"] {
            case nil: return Namespace(database: db, collection: nil)
            case .string(let coll)?: return Namespace(database: db, collection: coll)
            case let other?: throw wrong("\(field).coll", "string", other)
            }
        }
        let ns = try namespace("ns", event.ns)
        let to = try namespace("to", event.to)
        if operationType == .rename && to == nil { throw missing("to") }

        var documentKey = event.encodedDocumentKey
        if documentKey == nil, let keyValue = event.documentKey {
            guard case .document(let key) = keyValue else { throw wrong("documentKey", "document", keyValue) }
            documentKey = EncodedBSONDocument(key)
        }
        if operationType.documentOperation != nil, documentKey == nil { throw missing("documentKey") }

        var updateDescription: UpdateDescription?
        if let value = event.updateDescription, value != .null {
            updateDescription = try Self.updateDescription(value, operationType: opName)
        }

        var fullDocument = FullDocument.absent
        switch event.fullDocument {
        case nil: fullDocument = event.encodedFullDocument.map(FullDocument.document) ?? .absent
        case .null?: fullDocument = .null
        case .document(let doc)?: fullDocument = .document(EncodedBSONDocument(doc))
        case let other?: throw wrong("fullDocument", "document or null", other)
        }
        if operationType == .delete { fullDocument = .absent }

        self.init(encodedResumeToken: token, operationType: operationType, clusterTime: clusterTime, wallTime: wallTime,
                  namespace: ns, renamedTo: to, encodedDocumentKey: documentKey, updateDescription: updateDescription,
                  fullDocument: fullDocument)
        if operationType.documentOperation != nil, documentID == nil { throw missing("documentKey._id") }
    }

    private static func updateDescription(_ value: BSONValue, operationType op: String) throws(ChangeEventError) -> UpdateDescription {
        func wrong(_ field: String, _ expected: String, _ value: BSONValue) -> ChangeEventError {
            .wrongType("updateDescription.\(field)", expected: expected, found: value.typeName, operationType: op)
        }
        guard case .document(let description) = value else {
            throw ChangeEventError.wrongType("updateDescription", expected: "document", found: value.typeName, operationType: op)
        }
        var result = UpdateDescription()
        switch description["updatedFields"] {
        case nil: break
        case .document(let fields)?: result.updatedFields = fields
        case let other?: throw wrong("updatedFields", "document", other)
        }
        switch description["removedFields"] {
        case nil: break
        case .array(let items)?:
            for item in items {
                guard case .string(let path) = item else { throw wrong("removedFields", "array of strings", item) }
                result.removedFields.append(path)
            }
        case let other?: throw wrong("removedFields", "array", other)
        }
        switch description["truncatedArrays"] {
        case nil: break
        case .array(let items)?:
            for item in items {
                guard case .document(let entry) = item, case .string(let field)? = entry["field"],
                      let newSize = entry["newSize"]?.integerValue else {
                    throw wrong("truncatedArrays", "array of {field, newSize}", item)
                }
                result.truncatedArrays.append(TruncatedArray(field: field, newSize: newSize))
            }
        case let other?: throw wrong("truncatedArrays", "array", other)
        }
        switch description["disambiguatedPaths"] {
        case nil: break
        case .document(let paths)?: result.disambiguatedPaths = paths
        case let other?: throw wrong("disambiguatedPaths", "document", other)
        }
        return result
    }
}

extension BSONValue {
    /// The BSON type name used in error messages (`string`, `objectId`, `timestamp`, …).
    var typeName: String {
        switch self {
        case .double: "double"
        case .string: "string"
        case .document: "document"
        case .array: "array"
        case .binary: "binary"
        case .undefined: "undefined"
        case .objectId: "objectId"
        case .bool: "bool"
        case .datetime: "date"
        case .null: "null"
        case .regex: "regex"
        case .dbPointer: "dbPointer"
        case .javascript: "javascript"
        case .symbol: "symbol"
        case .javascriptWithScope: "javascriptWithScope"
        case .int32: "int"
        case .timestamp: "timestamp"
        case .int64: "long"
        case .decimal128: "decimal"
        case .minKey: "minKey"
        case .maxKey: "maxKey"
        }
    }

    /// The value as an `Int` when it is an int32, an int64 or an integral double.
    var integerValue: Int? {
        switch self {
        case .int32(let i): Int(i)
        case .int64(let i): Int(exactly: i)
        case .double(let d): Int(exactly: d)
        default: nil
        }
    }
}
