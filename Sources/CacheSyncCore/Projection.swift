import BSONModel

/// A collection's `project`: MongoDB projection syntax over dotted paths, either only inclusions or only exclusions;
/// `_id` is always kept (the read-through API and `verify` know a cached document by it). Applied to every
/// document before it is cached or served.
public struct Projection: Sendable, Equatable {
    /// Whether the listed paths are the ones kept (`1`) or the ones removed (`0`).
    public var including: Bool
    /// The listed paths, each split at its dots (`_id` not among them).
    public var paths: [[String]]

    /// A projection.
    public init(including: Bool, paths: [[String]]) {
        self.including = including
        self.paths = paths
    }

    /// `document` projected.
    public func apply(_ document: BSONDocument) -> BSONDocument {
        apply(document, keepingID: true)
    }

    private func apply(_ document: BSONDocument, keepingID: Bool) -> BSONDocument {
        var fields: [(key: String, value: BSONValue)] = []
        for field in document.fields {
            if field.key == "_id" && keepingID {
                fields.append(field)
                continue
            }
            // Most fields are not listed: decided without building the list of paths below them.
            guard paths.contains(where: { $0.first == field.key }) else {
                if !including { fields.append(field) }
                continue
            }
            let below = paths.filter { $0.first == field.key }
            if including {
                guard !below.isEmpty else { continue }
                // A listed field is kept whole; one with listed subfields keeps only those.
                if below.contains(where: { $0.count == 1 }) {
                    fields.append(field)
                } else if let value = Self.keeping(field.value, below.map { Array($0.dropFirst()) }) {
                    fields.append((field.key, value))
                }
            } else {
                if below.contains(where: { $0.count == 1 }) { continue }
                if below.isEmpty {
                    fields.append(field)
                } else {
                    fields.append((field.key, Self.removing(field.value, below.map { Array($0.dropFirst()) })))
                }
            }
        }
        return BSONDocument(fields)
    }

    /// The parts of `value` under `paths` (embedded documents, and documents in arrays, as MongoDB does); `nil` when
    /// a document keeps nothing. Values that are neither are dropped by an inclusion of their subfields.
    private static func keeping(_ value: BSONValue, _ paths: [[String]]) -> BSONValue? {
        switch value {
        case .document(let document):
            let kept = Projection(including: true, paths: paths).apply(document, keepingID: false)
            return kept.isEmpty ? nil : .document(kept)
        case .array(let elements):
            return .array(elements.compactMap { element in
                if case .document = element { return keeping(element, paths) }
                return nil
            })
        default:
            return nil
        }
    }

    /// `value` without the parts under `paths`.
    private static func removing(_ value: BSONValue, _ paths: [[String]]) -> BSONValue {
        switch value {
        case .document(let document):
            return .document(Projection(including: false, paths: paths).apply(document, keepingID: false))
        case .array(let elements):
            return .array(elements.map { removing($0, paths) })
        default:
            return value
        }
    }

    /// Whether an exclusion leaves out (part of) the field at `path`.
    public func leavesOut(_ path: [String]) -> Bool {
        !including && paths.contains { $0.starts(with: path) || path.starts(with: $0) }
    }

    /// The `$project` stage that makes the server drop the excluded fields from the events' `fullDocument` (valid in
    /// a change stream only for exclusions); `nil` for an inclusion, which cachesync applies itself.
    public var changeStreamStage: BSONDocument? {
        guard !including, !paths.isEmpty else { return nil }
        return ["$project": .document(BSONDocument(paths.map { ("fullDocument." + $0.joined(separator: "."), .int32(0)) }))]
    }

    /// The projection as MongoDB writes it (`{passwordHash: 0}`), for `find` and for `check-config`.
    public var document: BSONDocument {
        BSONDocument(paths.map { ($0.joined(separator: "."), BSONValue.int32(including ? 1 : 0)) })
    }
}

/// An exclusion applied to a document's bytes: the elements it keeps are copied as they are, without decoding the
/// document into a tree and encoding it again (what the stream's writes do for every event).
extension Projection {
    /// `apply` of an exclusion on encoded bytes (the same document as `apply` gives, encoded); `nil` for an
    /// inclusion (`apply` it decoded) or when the bytes are not a valid document.
    public func apply(_ document: EncodedBSONDocument) -> EncodedBSONDocument? {
        guard !including else { return nil }
        var reader = document.reader
        var out: [UInt8] = []
        out.reserveCapacity(document.bytes.count)
        guard (try? Self.exclude(paths, from: &reader, into: &out, keepingID: true)) != nil else { return nil }
        return EncodedBSONDocument(sharing: out, range: out.indices)
    }

    /// Copies the document (or array) at `reader` into `out` without the parts under `paths`, as `removing` does.
    private static func exclude(_ paths: [[String]], from reader: inout BSONReader, into out: inout [UInt8],
                                keepingID: Bool) throws {
        let start = out.count
        out += [0, 0, 0, 0]
        try reader.readElements { reader, type in
            let elementStart = reader.offset - 1
            let nameRange = try reader.cstringRange()
            let name = reader.withBytes(nameRange) { String(decoding: $0, as: UTF8.self) }
            let listed = !(keepingID && name == "_id") && paths.contains { $0.first == name }
            guard listed else {
                try reader.skipValue(type: type)
                reader.withBytes(elementStart..<reader.offset) { out.append(contentsOf: $0) }
                return
            }
            let below = paths.filter { $0.first == name }
            if below.contains(where: { $0.count == 1 }) {
                try reader.skipValue(type: type)  // left out whole
                return
            }
            reader.withBytes(elementStart..<reader.offset) { out.append(contentsOf: $0) }  // type and name
            try excludeValue(below.map { Array($0.dropFirst()) }, type: type, from: &reader, into: &out)
        }
        out.append(0)
        patchLength(&out, at: start)
    }

    /// Copies the value of `type` at `reader` into `out` without the parts under `paths`: a document loses them, each
    /// element of an array is treated the same way (positions kept), any other value stays.
    private static func excludeValue(_ paths: [[String]], type: UInt8, from reader: inout BSONReader,
                                     into out: inout [UInt8]) throws {
        switch type {
        case 0x03:
            try exclude(paths, from: &reader, into: &out, keepingID: false)
        case 0x04:
            let start = out.count
            out += [0, 0, 0, 0]
            try reader.readElements { reader, type in
                let elementStart = reader.offset - 1
                try reader.skipCString()
                reader.withBytes(elementStart..<reader.offset) { out.append(contentsOf: $0) }
                try excludeValue(paths, type: type, from: &reader, into: &out)
            }
            out.append(0)
            patchLength(&out, at: start)
        default:
            let valueStart = reader.offset
            try reader.skipValue(type: type)
            reader.withBytes(valueStart..<reader.offset) { out.append(contentsOf: $0) }
        }
    }

    /// Writes the length of the document that starts at `start` of `out` and ends at its end.
    private static func patchLength(_ out: inout [UInt8], at start: Int) {
        let length = UInt32(out.count - start)
        for i in 0..<4 { out[start + i] = UInt8(truncatingIfNeeded: length >> (8 * i)) }
    }
}
