import BSONModel
import CMongoc

/// Owns one libmongoc change stream on a collection, and the pooled client it runs on.
/// Blocking: use it from one dedicated thread, never from the cooperative pool.
public final class ChangeStream {
    private let pool: MongoClientPool
    private let client: OpaquePointer
    private let collection: OpaquePointer
    private let stream: OpaquePointer
    /// The watched namespace.
    public let namespace: MongoNamespace

    /// Opens a change stream; throws when the server refuses it (bad token, no replica set, …).
    public init(pool: MongoClientPool, namespace: MongoNamespace, options: ChangeStreamOptions) throws {
        self.pool = pool
        self.namespace = namespace
        let client = pool.popClient()
        let collection = mongoc_client_get_collection(client, namespace.database, namespace.collection)!
        let pipeline = BSONHandle(["pipeline": .array(options.pipeline.map(BSONValue.document))])
        let opts = BSONHandle(options.optionsDocument)
        self.client = client
        self.collection = collection
        stream = pipeline.withUnsafeHandle { p in
            opts.withUnsafeHandle { o in mongoc_collection_watch(collection, p, o)! }
        }
        // Every property is set, so throwing here runs deinit, which frees the stream, collection and client.
        if let error = currentError(context: "opening a change stream on \(namespace)") {
            throw error
        }
    }

    deinit {
        mongoc_change_stream_destroy(stream)
        mongoc_collection_destroy(collection)
        pool.pushClient(client)
    }

    /// The next event, or `nil` when the server returned an empty batch; throws the stream's error.
    /// libmongoc's stream errors are sticky: after a throw, destroy this stream and open a new one.
    public func next() throws -> BSONDocument? {
        try nextEventBytes().map { try BSONDocument(bsonBytes: $0) }
    }

    /// `next()` without decoding: the event's BSON bytes, copied once from libmongoc.
    public func nextEventBytes() throws -> [UInt8]? {
        var event: OpaquePointer?
        if mongoc_change_stream_next(stream, &event), let event {
            return BSONHandle.bytes(ofBorrowed: event)
        }
        if let error = currentError(context: "reading the change stream on \(namespace)") { throw error }
        return nil
    }

    /// The token to save to resume after everything returned so far (includes `postBatchResumeToken`).
    public var resumeToken: BSONDocument? {
        guard let token = mongoc_change_stream_get_resume_token(stream) else { return nil }
        return try? BSONHandle(copying: token).document()
    }

    private func currentError(context: String) -> MongoError? {
        var error = bson_error_t()
        var reply: OpaquePointer?
        guard mongoc_change_stream_error_document(stream, &error, &reply) else { return nil }
        let replyDoc = reply.flatMap { try? BSONHandle(copying: $0).document() }
        return MongoError(bsonError: error, reply: replyDoc, context: context)
    }
}
