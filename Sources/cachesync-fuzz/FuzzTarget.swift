import BSONModel
import CacheSyncCore

/// What the fuzzer feeds: the parsers that read input from outside the process. Each one must not crash, and where
/// two ways of reading the same input exist, or a writer's output is read back, they must agree.
enum FuzzTarget: String, CaseIterable, Sendable {
    /// BSON bytes: a document from MongoDB.
    case bson
    /// BSON bytes: a change event from MongoDB.
    case changeEvent = "change-event"
    /// Extended JSON text: a cached value read back (`verify`).
    case extendedJSON = "extended-json"
    /// YAML text: a config file.
    case config
    /// The `{id}` (and `{collection}`) segment of a read-through path, `GET /v1/cache/{collection}/{id}`.
    case documentID = "document-id"

    /// The target named by `--target=NAME`.
    static let selected: FuzzTarget? = CommandLine.arguments.lazy
        .compactMap { $0.hasPrefix("--target=") ? FuzzTarget(rawValue: String($0.dropFirst(9))) : nil }.first

    func run(_ input: UnsafeBufferPointer<UInt8>) {
        switch self {
        case .bson: Self.bson(Array(input))
        case .changeEvent: Self.changeEvent(Array(input))
        case .extendedJSON: Self.extendedJSON(String(decoding: input, as: UTF8.self))
        case .config:
            // The loader refuses a file that is not UTF-8 before parsing it.
            if let text = String(validating: input, as: UTF8.self) { Self.config(text) }
        case .documentID: Self.documentID(String(decoding: input, as: UTF8.self))
        }
    }

    /// Decoding to a tree, and writing JSON straight from the bytes (the way a change event's `fullDocument`, whose
    /// elements nothing else checks, reaches Redis), accept the same documents and give the same JSON.
    private static func bson(_ bytes: [UInt8]) {
        let encoded = EncodedBSONDocument(sharing: bytes, range: bytes.indices)
        let rendering = encoded.map { ExtendedJSON.rendering($0, maxBytes: .max) }
        guard let document = try? BSONDocument(bsonBytes: bytes), let encoded else {
            if case .text? = rendering { fail("JSON was written from bytes that do not decode") }
            return
        }
        let json = ExtendedJSON.relaxed(document)
        check(rendering == .text(json), "the JSON written from the bytes differs from the decoded document's")
        check(ExtendedJSON.rendering(encoded, maxBytes: json.utf8.count) == .text(json), "the JSON does not fit its own length")
        check(ExtendedJSON.rendering(encoded, maxBytes: json.utf8.count - 1) == .tooLarge, "the JSON fits one byte less")
        check(encoded["_id"].map(ExtendedJSON.relaxed) == document["_id"].map(ExtendedJSON.relaxed),
              "looking up _id in the bytes differs from the decoded document")
        let reencoded = document.bsonBytes()
        check((try? BSONDocument(bsonBytes: reencoded))?.bsonBytes() == reencoded, "re-encoding the document is not stable")
        // An exclusion applied to the bytes gives the JSON of the exclusion applied to the tree (the bytes keep a
        // string's invalid UTF-8, which the tree and the JSON writer both replace with U+FFFD).
        check(Self.exclusion.apply(encoded).map { ExtendedJSON.rendering($0, maxBytes: .max) }
                  == .text(ExtendedJSON.relaxed(Self.exclusion.apply(document))),
              "the exclusion on the bytes differs from the exclusion on the decoded document")
    }

    /// The exclusion the `bson` target checks: a top-level field, a path into documents and arrays, and `_id`'s
    /// neighbour names.
    private static let exclusion = Projection(including: false, paths: [["a"], ["b", "c"], ["_id", "x"], [""]])

    /// The three decodings (from a tree, from bytes, from bytes for applying) agree; what the applier reads of an
    /// event (key, token, the JSON of `fullDocument` for each strategy) never traps.
    private static func changeEvent(_ bytes: [UInt8]) {
        let applying = try? ChangeEvent(bsonBytes: bytes, decoding: .forApplying)
        if let applying {
            _ = applying.resumeToken
            _ = applying.documentKey
            for strategy in StrategyKind.allCases {
                var collection = CollectionConfig(database: "app", collection: "items", strategy: strategy, maxValueBytes: 256)
                _ = Strategy.plan(event: applying, collection: collection, keyPrefix: "", accessCount: 0)
                // Shaped: a filter and an exclusion read the unchecked bytes of fullDocument; hashes decode them.
                collection.projection = Self.exclusion
                collection.filter = .field(["b", "c"], [.exists(true)])
                collection.format = .hash
                _ = Strategy.plan(event: applying, collection: collection, keyPrefix: "", accessCount: 0)
            }
        }
        let all = try? ChangeEvent(bsonBytes: bytes)
        let fromTree = (try? BSONDocument(bsonBytes: bytes)).flatMap { try? ChangeEvent(bson: $0) }
        check((all == nil) == (fromTree == nil), "decoding from bytes and from the tree disagree on whether the event is valid")
        guard let all, let fromTree else { return }
        check(summary(all) == summary(fromTree) && all.namespace == fromTree.namespace && all.renamedTo == fromTree.renamedTo
                  && (all.updateDescription == nil) == (fromTree.updateDescription == nil),
              "decoding from bytes and from the tree give different events")
        check(applying.map(summary) == summary(all), "decoding for applying gives a different event")
    }

    /// What decoding for applying keeps, as text (JSON compares NaN equal to itself; a tree-decoded event holds its
    /// documents re-encoded, which may differ from the original bytes).
    private static func summary(_ event: ChangeEvent) -> String {
        let fullDocument = switch event.fullDocument {
        case .absent: "absent"
        case .null: "null"
        case .document(let document): ExtendedJSON.relaxed(document, maxBytes: .max) ?? "invalid"
        }
        return [ExtendedJSON.relaxed(event.resumeToken), event.operationType.description, "\(event.clusterTime as Any)",
                "\(event.wallTime as Any)", event.documentID.map(ExtendedJSON.relaxed) ?? "no id",
                event.documentKey.map(ExtendedJSON.relaxed) ?? "no key", fullDocument].joined(separator: " | ")
    }

    /// What the writer makes of what the reader read, reads back to the same JSON.
    private static func extendedJSON(_ text: String) {
        guard let value = try? ExtendedJSONReader.value(text) else { return }
        let json = ExtendedJSON.relaxed(value)
        // BSON names and regular expressions cannot hold NUL: the writer drops it, and `{"$oid\u0000": 1}` would
        // come back as `{"$oid": 1}`, which is not the same value. A document from BSON has none.
        guard !text.contains("\\u0000") else { return }
        let again = try? ExtendedJSONReader.value(json)
        check(again.map(ExtendedJSON.relaxed) == json, "the written JSON does not read back to the same JSON: \(json)")
    }

    /// A valid config renders to YAML that parses back to the same config (what `check-config` promises).
    private static func config(_ text: String) {
        let environment = ["HOST": "db.internal", "PORT": "27017", "EMPTY": ""]
        guard let config = try? ConfigLoader.parse(text: text, environment: environment) else { return }
        _ = ConfigRenderer.render(config)
        let rendered = ConfigRenderer.render(config, redactSecrets: false)
        check((try? ConfigLoader.parse(text: rendered)) == config, "the rendered config does not parse back:\n\(rendered)")
    }

    /// An id parsed from a path, of every id type, has a key text no other id has, and reads back from it.
    private static func documentID(_ segment: String) {
        _ = ReadThroughPath.collection(segment)
        for idType in IDType.allCases {
            guard let id = (try? ReadThroughPath.id(segment, idType: idType)) ?? nil else { continue }
            let key = DocumentID.keyText(id)
            // Escaped key texts, and only they, start with the byte `%`: a string's own text never does.
            if key.utf8.first == UInt8(ascii: "%") {
                if case .string(let string) = id {
                    check(!key.utf8.elementsEqual(string.utf8), "string id \(key) starts with % but is not escaped")
                }
                continue
            }
            check((try? DocumentID.parse(key, idType: idType)) == id, "\(idType) id \(key) does not read back from its key text")
        }
    }
}

/// Stops the run, which libFuzzer reports as a crash and keeps the input of.
private func fail(_ message: String) -> Never {
    fatalError("cachesync-fuzz: \(message)")
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fail(message()) }
}
