import BSONModel
import CMongoc

/// A namespace: database and collection.
public struct MongoNamespace: Sendable, Hashable, CustomStringConvertible {
    /// Database name.
    public var database: String
    /// Collection name.
    public var collection: String

    /// A namespace.
    public init(database: String, collection: String) {
        self.database = database
        self.collection = collection
    }

    /// `db.coll`.
    public var description: String { "\(database).\(collection)" }
}

extension MongoClientPool {
    /// Lends a `mongoc_collection_t*` for `body`.
    func withCollection<R>(_ ns: MongoNamespace, _ body: (OpaquePointer) throws -> R) rethrows -> R {
        try withClient { client in
            let coll = mongoc_client_get_collection(client, ns.database, ns.collection)!
            defer { mongoc_collection_destroy(coll) }
            return try body(coll)
        }
    }

    /// Runs a write that fills a reply, mapping failure to `MongoError`.
    private func write(_ ns: MongoNamespace, _ what: String,
                       _ call: (OpaquePointer, OpaquePointer, UnsafeMutablePointer<bson_error_t>) -> Bool) throws -> BSONDocument {
        try withCollection(ns) { coll in
            let reply = bson_new()!
            defer { bson_destroy(reply) }
            var error = bson_error_t()
            let ok = call(coll, reply, &error)
            let replyDoc = try? BSONHandle(copying: reply).document()
            guard ok else { throw MongoError(bsonError: error, reply: replyDoc, context: "\(what) in \(ns)") }
            return replyDoc ?? BSONDocument()
        }
    }

    /// Finds documents matching `filter`, at most `limit` (0: no limit).
    public func find(_ ns: MongoNamespace, filter: BSONDocument = [:], limit: Int = 0,
                     projection: BSONDocument? = nil) throws -> [BSONDocument] {
        var opts = BSONDocument()
        if limit > 0 { opts["limit"] = .int64(Int64(limit)) }
        if let projection { opts["projection"] = .document(projection) }
        var results: [BSONDocument] = []
        try eachFound(ns, filter: filter, opts: opts) { results.append(try BSONHandle(copying: $0).document()) }
        return results
    }

    /// The BSON bytes of the documents matching `filter` in `sort` order, at most `limit` (0: no limit), without
    /// decoding them: each copied once from libmongoc. `readConcern` (`majority`, `local`) is sent when given;
    /// `min` is an inclusive lower bound on the index `hint` names (the `find` command's `min` and `hint`).
    public func findBytes(_ ns: MongoNamespace, filter: BSONDocument = [:], sort: BSONDocument? = nil, limit: Int = 0,
                          projection: BSONDocument? = nil, readConcern: String? = nil, min: BSONDocument? = nil,
                          hint: BSONDocument? = nil) throws -> [[UInt8]] {
        var opts = BSONDocument()
        if let sort { opts["sort"] = .document(sort) }
        if limit > 0 {
            opts["limit"] = .int64(Int64(limit))
            opts["batchSize"] = .int64(Int64(Swift.min(limit, 100_000)))
        }
        if let projection { opts["projection"] = .document(projection) }
        if let readConcern { opts["readConcern"] = .document(["level": .string(readConcern)]) }
        if let min { opts["min"] = .document(min) }
        if let hint { opts["hint"] = .document(hint) }
        var results: [[UInt8]] = []
        try eachFound(ns, filter: filter, opts: opts) { results.append(BSONHandle.bytes(ofBorrowed: $0)) }
        return results
    }

    /// Runs `find` with `opts` and hands each document (borrowed from libmongoc, valid during the call) to `body`;
    /// throws the cursor's error.
    private func eachFound(_ ns: MongoNamespace, filter: BSONDocument, opts: BSONDocument,
                           _ body: (OpaquePointer) throws -> Void) throws {
        let filterHandle = BSONHandle(filter)
        let optsHandle = BSONHandle(opts)
        try withCollection(ns) { coll in
            let cursor = filterHandle.withUnsafeHandle { f in
                optsHandle.withUnsafeHandle { o in mongoc_collection_find_with_opts(coll, f, o, nil)! }
            }
            defer { mongoc_cursor_destroy(cursor) }
            var doc: OpaquePointer?
            while mongoc_cursor_next(cursor, &doc), let doc { try body(doc) }
            var error = bson_error_t()
            var reply: OpaquePointer?
            if mongoc_cursor_error_document(cursor, &error, &reply) {
                let replyDoc = reply.flatMap { try? BSONHandle(copying: $0).document() }
                throw MongoError(bsonError: error, reply: replyDoc, context: "find in \(ns)")
            }
        }
    }

    /// How many documents match `filter` (the `count` command).
    public func count(_ ns: MongoNamespace, filter: BSONDocument = [:]) throws -> Int {
        let reply = try runCommand(database: ns.database,
                                   command: ["count": .string(ns.collection), "query": .document(filter)])
        return reply.intValue("n")
    }

    /// The document whose `_id` is `id`, or `nil`.
    public func findOne(_ ns: MongoNamespace, id: BSONValue, projection: BSONDocument? = nil) throws -> BSONDocument? {
        try find(ns, filter: ["_id": id], limit: 1, projection: projection).first
    }

    /// Inserts one document.
    public func insertOne(_ ns: MongoNamespace, _ document: BSONDocument) throws {
        let doc = BSONHandle(document)
        _ = try write(ns, "insert") { coll, reply, error in
            doc.withUnsafeHandle { mongoc_collection_insert_one(coll, $0, nil, reply, error) }
        }
    }

    /// Inserts many documents in one command.
    public func insertMany(_ ns: MongoNamespace, _ documents: [BSONDocument]) throws {
        guard !documents.isEmpty else { return }
        let handles = documents.map(BSONHandle.init)
        var pointers = handles.map { $0.withUnsafeHandle { Optional($0) } }
        _ = try write(ns, "insertMany") { coll, reply, error in
            pointers.withUnsafeMutableBufferPointer { buf in
                mongoc_collection_insert_many(coll, buf.baseAddress, buf.count, nil, reply, error)
            }
        }
        withExtendedLifetime(handles) {}
    }

    /// Applies an update document (`{$set: …}`) to the first match; returns the matched count.
    @discardableResult
    public func updateOne(_ ns: MongoNamespace, filter: BSONDocument, update: BSONDocument, upsert: Bool = false) throws -> Int {
        let f = BSONHandle(filter), u = BSONHandle(update), o = BSONHandle(["upsert": .bool(upsert)])
        let reply = try write(ns, "update") { coll, reply, error in
            f.withUnsafeHandle { fp in u.withUnsafeHandle { up in o.withUnsafeHandle { op in
                mongoc_collection_update_one(coll, fp, up, op, reply, error)
            } } }
        }
        return reply.intValue("matchedCount")
    }

    /// Replaces the first match with `replacement`; returns the matched count.
    @discardableResult
    public func replaceOne(_ ns: MongoNamespace, filter: BSONDocument, replacement: BSONDocument, upsert: Bool = false) throws -> Int {
        let f = BSONHandle(filter), r = BSONHandle(replacement), o = BSONHandle(["upsert": .bool(upsert)])
        let reply = try write(ns, "replace") { coll, reply, error in
            f.withUnsafeHandle { fp in r.withUnsafeHandle { rp in o.withUnsafeHandle { op in
                mongoc_collection_replace_one(coll, fp, rp, op, reply, error)
            } } }
        }
        return reply.intValue("matchedCount")
    }

    /// Deletes the first match; returns the deleted count.
    @discardableResult
    public func deleteOne(_ ns: MongoNamespace, filter: BSONDocument) throws -> Int {
        let f = BSONHandle(filter)
        let reply = try write(ns, "delete") { coll, reply, error in
            f.withUnsafeHandle { mongoc_collection_delete_one(coll, $0, nil, reply, error) }
        }
        return reply.intValue("deletedCount")
    }

    /// Drops the collection; a missing collection is not an error.
    public func drop(_ ns: MongoNamespace) throws {
        try withCollection(ns) { coll in
            var error = bson_error_t()
            if !mongoc_collection_drop_with_opts(coll, nil, &error), error.code != 26 {
                let message = MongoError(bsonError: error, context: "drop \(ns)")
                if !message.message.contains("ns not found") { throw message }
            }
        }
    }
}

extension BSONDocument {
    /// An integer field of a reply, whatever its numeric type; 0 when absent.
    func intValue(_ key: String) -> Int {
        switch self[key] {
        case .int32(let v)?: Int(v)
        case .int64(let v)?: Int(v)
        case .double(let v)?: Int(v)
        default: 0
        }
    }
}
