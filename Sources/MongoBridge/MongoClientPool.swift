import BSONModel
import CMongoc

/// Owns a libmongoc client pool; lends clients to one thread at a time.
public final class MongoClientPool: @unchecked Sendable {
    private let pool: OpaquePointer
    private let uri: OpaquePointer

    /// Connects lazily to `uri` (nothing is contacted until the first operation).
    /// The error message never repeats the URI, so no password reaches a log.
    public init(uri text: String, appName: String = "cachesync") throws {
        MongoRuntime.ensureInitialised()
        var error = bson_error_t()
        guard let uri = mongoc_uri_new_with_error(text, &error) else {
            throw MongoError(bsonError: error, context: "parsing the MongoDB URI")
        }
        if mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0) == 0 {
            mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000)
        }
        if mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 0) == 0 {
            mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 3000)
        }
        guard let pool = mongoc_client_pool_new(uri) else {
            mongoc_uri_destroy(uri)
            throw MongoError(kind: .configuration, code: 0, message: "libmongoc refused the URI", context: "creating the client pool")
        }
        mongoc_client_pool_set_error_api(pool, 2)
        _ = mongoc_client_pool_set_appname(pool, appName)
        self.pool = pool
        self.uri = uri
    }

    deinit {
        mongoc_client_pool_destroy(pool)
        mongoc_uri_destroy(uri)
    }

    /// The database named in the URI path, if any.
    public var uriDatabase: String? {
        guard let db = mongoc_uri_get_database(uri) else { return nil }
        return String(cString: db)
    }

    /// Pops a client for the duration of `body` (blocking: call off the cooperative pool).
    func withClient<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        let client = mongoc_client_pool_pop(pool)!
        defer { mongoc_client_pool_push(pool, client) }
        return try body(client)
    }

    /// Pops a client that the caller keeps (a change stream holds one for its lifetime).
    func popClient() -> OpaquePointer {
        mongoc_client_pool_pop(pool)!
    }

    /// Returns a client taken with `popClient`.
    func pushClient(_ client: OpaquePointer) {
        mongoc_client_pool_push(pool, client)
    }

    /// Runs `{ping: 1}` against `admin`; throws when no server answers.
    public func ping() throws {
        _ = try runCommand(database: "admin", command: ["ping": .int32(1)])
    }

    /// Runs a command and returns the reply.
    public func runCommand(database: String, command: BSONDocument) throws -> BSONDocument {
        let cmd = BSONHandle(command)
        return try withClient { client in
            let reply = bson_new()!
            defer { bson_destroy(reply) }
            var error = bson_error_t()
            let ok = cmd.withUnsafeHandle { mongoc_client_command_simple(client, database, $0, nil, reply, &error) }
            let replyDoc = try? BSONHandle(copying: reply).document()
            guard ok else { throw MongoError(bsonError: error, reply: replyDoc, context: "running \(command.keys.first ?? "command") on \(database)") }
            return replyDoc ?? BSONDocument()
        }
    }
}
