import BSONModel
import CacheSyncCore
import Foundation
import Hummingbird
import MongoBridge
import RedisBridge

extension HTTPService {
    /// The routes of one listener: the status routes, the read-through API, or both.
    func makeRouter(status: Bool, readThrough serveReadThrough: Bool) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        if serveReadThrough {
            router.get("/v1/cache/:collection/:id") { [self] request, context in
                // Checked before anything else: a request without the token costs no Redis or MongoDB call.
                if let apiToken, !apiToken.accepts(request.headers[.authorization]) {
                    var response = Self.error(.unauthorized, "the read-through API needs \"Authorization: Bearer <token>\"")
                    response.headers[.wwwAuthenticate] = "Bearer realm=\"cachesync\""
                    return response
                }
                return await readThrough(collection: context.parameters.get("collection") ?? "",
                                         id: context.parameters.get("id") ?? "")
            }
        }
        guard status else { return router }
        router.get("/healthz") { _, _ in
            Self.json(.ok, #"{"status":"ok"}"#)
        }
        router.get("/readyz") { [readiness] _, _ in
            let verdict = await readiness.check()
            if verdict.ready { return Self.json(.ok, #"{"status":"ready"}"#) }
            let reasons = verdict.reasons.map(ExtendedJSON.quoted).joined(separator: ",")
            return Self.json(.serviceUnavailable, #"{"status":"not ready","reasons":["# + reasons + "]}")
        }
        router.get("/metrics") { [registry, telemetry] _, _ in
            telemetry.refreshLeaderGauges()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers,
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/v1/stats") { [telemetry, readiness, live] _, _ in
            var report = StatsReport(telemetry.snapshot())
            report.redisCluster = await readiness.clusterTopology()
            for collection in live.current.collections where !collection.indexes.isEmpty {
                report.collections[collection.namespace]?.indexOldKeysFrom = collection.preImages ? "preImages" : "record"
            }
            return Self.json(.ok, report.json())
        }
        return router
    }

    /// `GET /v1/cache/{collection}/{id}`: 400 for an unknown collection or a bad id, else the read-through answer.
    func readThrough(collection name: String, id rawID: String) async -> Response {
        let collectionName = ReadThroughPath.collection(name)
        let collections = live.collectionsByRouteName
        guard let collection = collections[collectionName] else {
            let known = Set(collections.keys).sorted().joined(separator: ", ")
            return Self.error(.badRequest, "unknown collection \"\(collectionName)\" (configured: \(known))")
        }
        let id: BSONValue
        do {
            guard let parsed = try ReadThroughPath.id(rawID, idType: collection.idType) else {
                return Self.error(.badRequest, "id \"\(rawID)\" is not valid percent-encoding")
            }
            id = parsed
        } catch {
            return Self.error(.badRequest, "collection \(collection.namespace): \(error)")
        }
        let readThrough = readThrough
        let connections = connections
        do {
            let outcome = try await workers.run { index in
                try readThrough.read(collection, id: id, redis: connections[index])
            }
            switch outcome {
            case .hit(let json): return Self.json(.ok, json, cache: "HIT")
            case .miss(let json): return Self.json(.ok, json, cache: "MISS")
            case .notFound(let remembered):
                var response = Self.error(.notFound, "collection \(collection.namespace) has no document with _id \(ExtendedJSON.relaxed(id))")
                response.headers[Self.xCache] = remembered ? "HIT" : "MISS"
                return response
            case .tooLarge(let remembered):
                var response = Self.error(.contentTooLarge, "the document with _id \(ExtendedJSON.relaxed(id)) in \(collection.namespace) is larger than maxValueBytes (\(collection.maxValueBytes)): it is neither cached nor served here; read it from MongoDB")
                response.headers[Self.xCache] = remembered ? "HIT" : "MISS"
                return response
            }
        } catch let error as RedisError {
            telemetry.error(collection.namespace, kind: "read_redis")
            logger.warning("read-through of \(collection.namespace) failed: \(error)")
            return Self.error(.serviceUnavailable, "redis: \(error)")
        } catch let error as MongoError {
            telemetry.error(collection.namespace, kind: "read_mongodb")
            logger.warning("read-through of \(collection.namespace) failed: \(error)")
            return Self.error(.badGateway, "mongodb: \(error.message)")
        } catch {
            return Self.error(.serviceUnavailable, "\(error)")
        }
    }

    /// `X-Cache`: `HIT` when Redis answered, `MISS` when MongoDB did.
    static let xCache = HTTPFields.Element.Name("X-Cache")!

    /// A JSON response, with `X-Cache` (`HIT` or `MISS`) when `cache` is given.
    static func json(_ status: HTTPResponse.Status, _ body: String, cache: String? = nil) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let cache { headers[xCache] = cache }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// `{"error": message}` with `status`.
    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(status, #"{"error":"# + ExtendedJSON.quoted(message) + "}")
    }
}
