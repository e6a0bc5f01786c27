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
            guard let name = key.withUTF8(TopLevelFields.Name.init), !fields.has(name) else { continue }
            fields.set(name, value)
        }
        try self.init(fields)
    }

    /// Which fields `init(bsonBytes:decoding:)` builds.
    public enum Decoding: Sendable {
        /// Every field of the model, as `init(bson:)`.
        case all
        /// What applying the event to the cache reads: `namespace` (`ns`) and `updateDescription` are left `nil`
        /// (a change stream watches one collection, and the cache is written from the document key and
        /// `fullDocument`) and skipped by their length, and `fullDocument` is kept with only its length and
        /// terminator checked: the JSON writer checks its elements as it writes them.
        case forApplying
    }

    /// Decodes an event from its BSON bytes as `init(bson:)` does, in one pass over its top-level fields: fields
    /// the model does not read (and, `.forApplying`, those the applier does not read) are skipped, the operation
    /// type is read from its bytes, and the resume token, `documentKey` and `fullDocument` are checked but kept as
    /// bytes (shared with `bsonBytes`). No tree of values is built for a well-formed event; for applying, a usual
    /// one is read straight into the model (`usualEventForApplying`).
    public init(bsonBytes: [UInt8], decoding: Decoding = .all) throws {
        if decoding == .forApplying {
            do {
                self = try Self.usualEventForApplying(bsonBytes)
                return
            } catch {
                // Unusual or wrong: the general decoding below says what.
            }
        }
        var reader = BSONReader(bytes: bsonBytes)
        var fields = TopLevelFields()
        try reader.readElements { reader, type in
            guard let name = reader.withBytes(try reader.cstringRange(), TopLevelFields.Name.init), !fields.has(name) else {
                return try reader.skipValue(type: type)
            }
            switch (decoding, name, type) {
            case (.forApplying, .ns, _), (.forApplying, .updateDescription, _):
                try reader.skipValueByLength(type: type)
            case (.forApplying, .fullDocument, 0x03):
                fields.fullDocument = .value(.document(try reader.readEncodedDocument(checkingElements: false)))
            default:
                try fields.read(name, type: type, from: &reader)
            }
        }
        guard reader.offset == bsonBytes.count else {
            throw reader.fail("\(bsonBytes.count - reader.offset) trailing bytes after the event")
        }
        try self.init(consume fields)
    }

    /// What `init(bsonBytes:decoding: .forApplying)` gives, read in one pass straight into the model when the event
    /// is well-formed and each field it reads has its usual type (a rename, which needs `to`, goes the general
    /// way); for anything else it throws `Unusual` (rather than returning an optional, which would copy the event),
    /// and the general decoding reports what is wrong. Applying decodes every event, so it is spared the general
    /// decoding's bookkeeping of each field's type and presence.
    private static func usualEventForApplying(_ bytes: [UInt8]) throws -> ChangeEvent {
        var reader = BSONReader(bytes: bytes)
        var seen: UInt16 = 0
        var token, documentKey: Range<Int>?
        var documentID: BSONValue?
        var operationType: OperationType?
        var clusterTime: ClusterTime?
        var wallTime: Int64?
        var fullDocument = FullDocumentPart.absent
        try reader.readElements { reader, type in
            guard let name = reader.withBytes(try reader.cstringRange(), TopLevelFields.Name.init),
                  seen & 1 << name.rawValue == 0 else {
                return try reader.skipValue(type: type)
            }
            seen |= 1 << name.rawValue
            let start = reader.offset
            switch (name, type) {
            case (.id, 0x03):
                try reader.skipValue(type: type)
                token = start..<reader.offset
            case (.operationType, 0x02):
                operationType = reader.withBytes(try reader.stringRange(), OperationType.init(utf8:))
            case (.clusterTime, 0x11):
                let increment = try reader.le(UInt32.self)
                clusterTime = .timestamp(seconds: try reader.le(UInt32.self), increment: increment)
            case (.clusterTime, 0x09): clusterTime = .date(try reader.le(Int64.self))
            case (.wallTime, 0x09): wallTime = try reader.le(Int64.self)
            case (.wallTime, 0x0A): break
            case (.ns, _), (.updateDescription, _): try reader.skipValueByLength(type: type)
            case (.documentKey, 0x03):
                // Finding `_id` walks and checks the whole key; without one (or broken) it goes the general way.
                try reader.skipValueByLength(type: type)
                guard let id = Self.id(in: bytes, at: start..<reader.offset) else { throw Unusual() }
                (documentKey, documentID) = (start..<reader.offset, id)
            case (.fullDocument, 0x03):
                try reader.skipValueByLength(type: type)
                fullDocument = .document(start..<reader.offset)
            case (.fullDocument, 0x0A): fullDocument = .null
            default: throw Unusual()
            }
        }
        guard reader.offset == bytes.count, let token, let operationType, operationType != .rename else { throw Unusual() }
        if operationType.documentOperation != nil, documentID == nil { throw Unusual() }
        if operationType == .delete { fullDocument = .absent }
        return ChangeEvent(bytes: bytes, tokenRange: token, operationType: operationType, clusterTime: clusterTime,
                           wallTime: wallTime, documentKeyRange: documentKey, documentID: documentID,
                           fullDocument: fullDocument)
    }

    /// The `_id` of the document at `range` of `bytes` (whose length and terminator are checked), checking the
    /// whole document; `nil` when it has none or is broken.
    private static func id(in bytes: [UInt8], at range: Range<Int>) -> BSONValue? {
        EncodedBSONDocument(sharing: bytes, range: range)?["_id"]
    }

    /// Why `usualEventForApplying` leaves an event to the general decoding.
    private struct Unusual: Error {}

    /// The top-level fields the model reads, each the first of its name, as the model's types; a field of another
    /// BSON type keeps its value for the error.
    private struct TopLevelFields {
        /// A field that was present.
        enum Slot<Value> {
            /// Of the expected type.
            case value(Value)
            /// Of another type.
            case wrongType(BSONValue)
        }

        var token, documentKey: Slot<EncodedBSONDocument>?
        var operationType: Slot<OperationType>?
        var clusterTime: Slot<ClusterTime>?
        var wallTime: Slot<Int64?>?
        var fullDocument: Slot<FullDocument>?
        var ns, to, updateDescription: BSONValue?

        /// Whether the field `name` was set.
        func has(_ name: Name) -> Bool {
            switch name {
            case .id: token != nil
            case .operationType: operationType != nil
            case .clusterTime: clusterTime != nil
            case .wallTime: wallTime != nil
            case .ns: ns != nil
            case .to: to != nil
            case .documentKey: documentKey != nil
            case .updateDescription: updateDescription != nil
            case .fullDocument: fullDocument != nil
            }
        }

        /// Reads the value of the field `name`, of BSON `type`, from `reader` (positioned after its name): the
        /// documents the event keeps as bytes and the operation type straight from the bytes, the rest as `set`.
        mutating func read(_ name: Name, type: UInt8, from reader: inout BSONReader) throws {
            switch (name, type) {
            case (.id, 0x03): token = .value(try reader.readEncodedDocument())
            case (.documentKey, 0x03): documentKey = .value(try reader.readEncodedDocument())
            case (.fullDocument, 0x03): fullDocument = .value(.document(try reader.readEncodedDocument()))
            case (.operationType, 0x02):
                operationType = .value(reader.withBytes(try reader.stringRange(), OperationType.init(utf8:)))
            default: set(name, try reader.readValue(type: type))
            }
        }

        /// Sets the field `name` (not set yet) to `value`.
        mutating func set(_ name: Name, _ value: BSONValue) {
            switch name {
            case .id: token = Self.document(value)
            case .documentKey: documentKey = Self.document(value)
            case .operationType:
                operationType = if case .string(let name) = value { .value(OperationType(name)) } else { .wrongType(value) }
            case .clusterTime:
                clusterTime = switch value {
                case .timestamp(let seconds, let increment): .value(.timestamp(seconds: seconds, increment: increment))
                case .datetime(let ms): .value(.date(ms))
                default: .wrongType(value)
                }
            case .wallTime:
                wallTime = switch value {
                case .null: .value(nil)
                case .datetime(let ms): .value(ms)
                default: .wrongType(value)
                }
            case .fullDocument:
                fullDocument = switch value {
                case .null: .value(.null)
                case .document(let document): .value(.document(EncodedBSONDocument(document)))
                default: .wrongType(value)
                }
            case .ns: ns = value
            case .to: to = value
            case .updateDescription: updateDescription = value
            }
        }

        private static func document(_ value: BSONValue) -> Slot<EncodedBSONDocument> {
            if case .document(let document) = value { .value(EncodedBSONDocument(document)) } else { .wrongType(value) }
        }

        /// The name of a field the model reads.
        enum Name: Int, CaseIterable {
            case id, operationType, clusterTime, wallTime, ns, to, documentKey, updateDescription, fullDocument

            /// The name of `key`, `nil` for a field the model does not read.
            init?(_ key: UnsafeBufferPointer<UInt8>) {
                guard let name = Self.table.value(named: key) else { return nil }
                self = name
            }

            private static let table = KnownNames(allCases.map { ($0.text, $0) })

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
    }

    private init(_ event: consuming TopLevelFields) throws(ChangeEventError) {
        var op: String?
        func missing(_ field: String) -> ChangeEventError { .missingField(field, operationType: op) }
        func wrong(_ field: String, _ expected: String, _ value: BSONValue) -> ChangeEventError {
            .wrongType(field, expected: expected, found: value.typeName, operationType: op)
        }
        func required<Value>(_ slot: TopLevelFields.Slot<Value>?, _ field: String, _ expected: String) throws(ChangeEventError) -> Value {
            switch slot {
            case nil: throw missing(field)
            case .wrongType(let value)?: throw wrong(field, expected, value)
            case .value(let value)?: return value
            }
        }
        func optional<Value>(_ slot: TopLevelFields.Slot<Value>?, _ field: String, _ expected: String) throws(ChangeEventError) -> Value? {
            guard let slot else { return nil }
            return try required(slot, field, expected)
        }

        let operationType = try required(event.operationType, "operationType", "string")
        op = operationType.description
        let token = try required(event.token, "_id (resume token)", "document")
        let clusterTime = try optional(event.clusterTime, "clusterTime", "timestamp or date")
        let wallTime = try optional(event.wallTime, "wallTime", "date") ?? nil

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

        let documentKey = try optional(event.documentKey, "documentKey", "document")
        if operationType.documentOperation != nil, documentKey == nil { throw missing("documentKey") }

        var updateDescription: UpdateDescription?
        if let value = event.updateDescription, value != .null {
            updateDescription = try Self.updateDescription(value, operationType: op ?? "")
        }

        var fullDocument = try optional(event.fullDocument, "fullDocument", "document or null") ?? .absent
        if operationType == .delete { fullDocument = .absent }

        let documentID = documentKey?["_id"]
        if operationType.documentOperation != nil, documentID == nil { throw missing("documentKey._id") }
        self.init(encodedResumeToken: token, operationType: operationType, clusterTime: clusterTime, wallTime: wallTime,
                  namespace: ns, renamedTo: to, encodedDocumentKey: documentKey, documentID: documentID,
                  updateDescription: updateDescription, fullDocument: fullDocument)
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
