import Foundation
import RedisBridge
import Testing
import TestSupport

/// A collection whose name holds a dot, written with the collection's `database` field (docs/ARCHITECTURE.md §3).
///
/// nx-27017 refuses such names ("Invalid identifier 'orders.v2': must contain only alphanumeric characters and
/// underscores"), so the scripted server plays the real event format on `app.orders.v2` and records where cachesync
/// opens its streams.
@Suite("Dotted collection names against the scripted MongoDB server", .serialized)
struct DottedCollectionTests {
    @Test("a collection orders.v2 with a database field is watched on app.orders.v2, never on orders.v2")
    func explicitDatabaseWatchesTheDottedNamespace() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "basic", database: "app", collection: "orders.v2") { server in
                let connection = try redis.connect()
                let prefix = redis.key("")
                let config = server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next())
                #expect(config.contains("  \"orders.v2\":\n    database: \"app\"\n"), "\(config)")
                let sidecar = try CacheSyncProcess(config: config)
                try sidecar.start()
                defer { sidecar.process.stop() }
                let applied = waitUntil(timeout: .seconds(30)) {
                    let reply = try? connection.command(["HGET", prefix + "cachesync:applied:app.orders.v2", "events"])
                    return (Int(reply?.text ?? "0") ?? 0) >= 12
                }
                let context = Comment(rawValue: "cachesync log:\n\(sidecar.log)\n--- record ---\n\(server.recordText)")
                #expect(applied, context)
                let streams = server.aggregates.map { "\($0["db"] as? String ?? "?").\($0["collection"] as? String ?? "?")" }
                #expect(!streams.isEmpty && streams.allSatisfy { $0 == "app.orders.v2" }, "streams opened on \(streams)")
                #expect(try connection.command(["EXISTS", prefix + "cachesync:resume:app.orders.v2"]).integer == 1, context)
                #expect(try connection.command(["EXISTS", prefix + "orders.v2:665a0f0c1a2b3c4d5e6f7a01"]).integer == 1, context)
            }
        }
    }
}
