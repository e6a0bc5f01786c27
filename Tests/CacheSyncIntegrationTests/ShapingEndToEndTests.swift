import BSONModel
import Foundation
import MongoBridge
import Testing
import TestSupport

/// `project` and `filter` through the binary against nx-27017 and redis-server, and the projection sent to the
/// server in the change stream's pipeline (the scripted server records it).
@Suite("Shaping what is cached end to end", .serialized)
struct ShapingEndToEndTests {
    @Test("project: { passwordHash: 0 } keeps the field out of Redis through the stream and the read-through API; an inclusion keeps only what it lists")
    func projection() throws {
        let f = try SidecarFixture()
        let sidecar = try f.startSidecar(config: f.config(collections: """
              users:
                strategy: update
                project: { passwordHash: 0 }
              products:
                strategy: invalidate
                project: { name: 1, "price.eur": 1 }
            """), collections: 2)
        let users = f.ns("users"), products = f.ns("products")
        for i in 0..<5 {
            try f.pool.insertOne(users, ["_id": .int32(Int32(i)), "name": .string("u\(i)"), "passwordHash": .string("$2b$12$secret\(i)")])
        }
        try f.pool.updateOne(users, filter: ["_id": .int32(1)], update: ["$set": .document(["name": .string("renamed")])])
        try f.eventually("users cached", sidecar) { try f.cached(f.key("users", "1"))?.contains("renamed") == true }
        for i in 0..<5 {
            let cached = try #require(try f.cached(f.key("users", String(i))))
            #expect(!cached.contains("passwordHash") && cached.hasPrefix(#"{"_id":\#(i),"name":"#), "\(cached)")
        }
        // Through the read-through API: the key gone, read again from MongoDB.
        _ = try f.redis.command(["DEL", f.key("users", "3")])
        let read = try #require(HTTPHarness.get(port: f.httpPort, path: "/v1/cache/users/3"))
        #expect(read.status == 200 && read.body == #"{"_id":3,"name":"u3"}"#, "\(read.body)")
        #expect(try f.cached(f.key("users", "3")) == #"{"_id":3,"name":"u3"}"#)

        try f.pool.insertOne(products, ["_id": .string("p1"), "name": .string("lamp"), "secret": .int32(1),
                                        "price": .document(["eur": .int32(10), "cost": .int32(4)])])
        let product = try #require(HTTPHarness.get(port: f.httpPort, path: "/v1/cache/products/p1"))
        #expect(product.body == #"{"_id":"p1","name":"lamp","price":{"eur":10}}"#, "\(product.body)")
        #expect(try f.cached(f.key("products", "p1")) == product.body)

        // verify understands projected values.
        sidecar.process.stop()
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "\(verify.output)")
    }

    @Test("filter: a document updated out of the filter loses its key, back in it is cached again; deleting a filtered-out document is harmless")
    func filter() throws {
        let f = try SidecarFixture()
        let sidecar = try f.startSidecar(config: f.config(collections: """
              users:
                strategy: update
                filter: { status: active, age: { $gte: 18 } }
            """), collections: 1)
        let users = f.ns("users")
        try f.pool.insertOne(users, ["_id": .int32(1), "status": .string("active"), "age": .int32(30)])
        try f.pool.insertOne(users, ["_id": .int32(2), "status": .string("active"), "age": .int32(12)])
        try f.pool.insertOne(users, ["_id": .int32(3), "status": .string("banned"), "age": .int32(40)])
        try f.eventually("1 cached", sidecar) { try f.cached(f.key("users", "1")) != nil }
        try f.pool.insertOne(users, ["_id": .int32(99), "status": .string("active"), "age": .int32(99)])
        try f.eventually("marker", sidecar) { try f.cached(f.key("users", "99")) != nil }
        #expect(try f.cached(f.key("users", "2")) == nil && f.cached(f.key("users", "3")) == nil)

        try f.pool.updateOne(users, filter: ["_id": .int32(1)], update: ["$set": .document(["status": .string("left")])])
        try f.eventually("1 left the filter", sidecar) { try f.cached(f.key("users", "1")) == nil }
        try f.pool.updateOne(users, filter: ["_id": .int32(1)], update: ["$set": .document(["status": .string("active")])])
        try f.eventually("1 is back", sidecar) {
            try f.cached(f.key("users", "1")) == #"{"_id":1,"status":"active","age":30}"#
        }
        try f.pool.deleteOne(users, filter: ["_id": .int32(3)])
        try f.pool.updateOne(users, filter: ["_id": .int32(2)], update: ["$set": .document(["age": .int32(18)])])
        try f.eventually("2 entered the filter", sidecar) { try f.cached(f.key("users", "2")) != nil }
        #expect(try f.cached(f.key("users", "3")) == nil)

        // Read-through serves a filtered-out document without caching it.
        try f.pool.insertOne(users, ["_id": .int32(4), "status": .string("banned"), "age": .int32(50)])
        _ = try f.redis.command(["DEL", f.key("users", "4")])
        let read = try #require(HTTPHarness.get(port: f.httpPort, path: "/v1/cache/users/4"))
        #expect(read.status == 200 && read.body.contains("banned"))
        #expect(try f.cached(f.key("users", "4")) == nil, "a filtered-out document is never cached by a read")

        // verify names a cached document the filter leaves out.
        sidecar.process.stop()
        _ = try f.redis.command(["SET", f.key("users", "4"), #"{"_id":4,"status":"banned","age":50}"#])
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 1 && verify.output.contains("filtered \(f.database).users \(f.key("users", "4"))"),
                "\(verify.output)")
    }

    @Test("an exclusion is sent in the change stream's pipeline ($project on fullDocument), and cachesync applies it too")
    func projectionInThePipeline() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "basic") { server in
                let prefix = redis.key("")
                let config = server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next(),
                                                    settings: ["project: { n: 0, created: 0 }"])
                let sidecar = try CacheSyncProcess(config: config)
                try sidecar.start()
                defer { sidecar.process.stop() }
                let connection = try redis.connect()
                let key = prefix + "items:665a0f0c1a2b3c4d5e6f7a01"
                let cached = waitUntil(timeout: .seconds(30)) { (try? connection.command(["GET", key]).text) != nil }
                #expect(cached, "\(sidecar.log)")
                let value = try connection.command(["GET", key]).text ?? ""
                #expect(value.contains("\"name\":\"Ada\"") && !value.contains("\"n\":") && !value.contains("created"), "\(value)")
                let projections = server.aggregates.compactMap { $0["projections"] as? [[String: Any]] }
                #expect(projections.contains { stages in
                    stages.contains { $0["fullDocument.n"] as? Int == 0 && $0["fullDocument.created"] as? Int == 0 }
                }, "the pipeline carries the projection: \(projections)")
            }
        }
    }
}
