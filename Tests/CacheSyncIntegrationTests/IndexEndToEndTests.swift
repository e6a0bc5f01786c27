import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// Secondary keys (`indexes`) through the binary: their old values from the record cachesync keeps (nx-27017, which
/// has no pre-images) and from the events' pre-images (the scripted real-format server), each across a kill -9.
@Suite("Secondary keys end to end", .serialized)
struct IndexEndToEndTests {
    /// The secondary keys under `pattern` and their values.
    static func secondaryKeys(_ redis: any RedisClient, pattern: String) throws -> [String: String] {
        var found: [String: String] = [:]
        try redis.scan(match: pattern) { keys in
            for key in keys { found[key] = try redis.command(["GET", key]).text ?? "" }
            return true
        }
        return found
    }

    @Test("records: 1,000 random email changes and deletes with a kill -9 in the middle: every user:email key names its user, none is left for an old email, and the copies follow")
    func recordsAcrossKillNine() throws {
        let f = try SidecarFixture()
        let prefix = f.redisServer.keyPrefix
        let config = f.config(collections: """
              users:
                strategy: update
                project: { secret: 0 }
                indexes:
                  - key: "user:email:{email}"
                  - key: "user:handle:{profile.handle}"
                    value: document
            """)
        var sidecar = try f.startSidecar(config: config, collections: 1)
        let users = f.ns("users")
        var rng = SystemRandomNumberGenerator()
        var emails: [Int: String] = [:]
        var writes = 0
        for id in 0..<60 {
            emails[id] = "u\(id)-0@example.com"
            try f.pool.insertOne(users, ["_id": .int32(Int32(id)), "email": .string(emails[id]!), "secret": .string("s"),
                                         "profile": .document(["handle": .string("h\(id)")])])
            writes += 1
        }
        for n in 1...1_000 {
            if n % 50 == 0, emails.count > 45 {
                let victim = emails.keys.sorted()[Int.random(in: 0..<emails.count, using: &rng)]
                _ = try f.pool.deleteOne(users, filter: ["_id": .int32(Int32(victim))])
                emails[victim] = nil
                writes += 1
            }
            let id = emails.keys.sorted()[Int.random(in: 0..<emails.count, using: &rng)]
            emails[id] = "u\(id)-\(n)@example.com"
            _ = try f.pool.updateOne(users, filter: ["_id": .int32(Int32(id))],
                                     update: ["$set": .document(["email": .string(emails[id]!)])])
            writes += 1
            if n == 500 {
                sidecar.process.kill()
                sidecar = try CacheSyncProcess(config: config, environment: ["CACHESYNC_INSTANCE_ID": "test-1"])
                try sidecar.start()
            }
        }
        try f.eventually("all \(writes) events applied", sidecar, timeout: .seconds(60)) { try f.appliedEvents("users") >= writes }

        let byEmail = try Self.secondaryKeys(f.redis, pattern: prefix + "user:email:*")
        let expected = Dictionary(uniqueKeysWithValues: emails.map { (prefix + "user:email:" + $0.value, f.key("users", String($0.key))) })
        #expect(byEmail == expected, "\(byEmail.count) keys for \(expected.count) users; extra: \(Set(byEmail.keys).subtracting(expected.keys).prefix(5)), missing: \(Set(expected.keys).subtracting(byEmail.keys).prefix(5))")
        let byHandle = try Self.secondaryKeys(f.redis, pattern: prefix + "user:handle:*")
        #expect(byHandle.count == emails.count, "left: \(byHandle.filter { key, _ in !emails.keys.contains { key.hasSuffix(":h\($0)") } }.prefix(3))")
        for (id, email) in emails {
            let copy = byHandle[prefix + "user:handle:h\(id)"]
            #expect(copy == #"{"_id":\#(id),"email":"\#(email)","profile":{"handle":"h\#(id)"}}"#, "\(copy ?? "none")")
            #expect(try f.cached(f.key("users", String(id))) == copy)
        }
        // Each document's record lists its keys, with the same TTL.
        let record = try #require(try f.cached(f.key("users", "\(emails.keys.min()!)") + ":indexes"))
        #expect(record.split(separator: "\0").count == 2)
        #expect(try f.pttl(f.key("users", "\(emails.keys.min()!)") + ":indexes") > 0)

        // verify checks the secondary keys too: clean, then a planted stale one and a conflict.
        sidecar.process.stop()
        var verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "\(verify.output)")
        let someone = emails.keys.min()!, other = emails.keys.max()!
        _ = try f.redis.command(["SET", prefix + "user:email:gone@example.com", f.key("users", String(someone))])
        try f.pool.updateOne(users, filter: ["_id": .int32(Int32(other))],
                             update: ["$set": .document(["email": .string(emails[someone]!)])])
        verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 1, "\(verify.output)")
        #expect(verify.output.contains("stale \(f.database).users \(prefix)user:email:gone@example.com"), "\(verify.output)")
        #expect(verify.output.contains("conflict \(f.database).users \(prefix)user:email:\(emails[someone]!)"), "\(verify.output)")
    }

    @Test("pre-images: the scripted server's 1,000 email changes with fullDocumentBeforeChange, a kill -9 in the middle: the keys match the final state and no record is kept")
    func preImagesAcrossKillNine() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "emails", collection: "users") { server in
                let prefix = redis.key("")
                let httpPort = try FreePort.next()
                let config = server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: httpPort, settings: [
                    "preImages: true",
                    "indexes: [ { key: \"user:email:{email}\" } ]",
                ])
                let environment = ["CACHESYNC_INSTANCE_ID": "pre-1", "CACHESYNC_TEST_APPLY_DELAY": "0.05"]
                var sidecar = try CacheSyncProcess(config: config, environment: environment)
                try sidecar.start()
                let connection = try redis.connect()
                let applied = { () -> Int in
                    var total = 0
                    try connection.scan(match: prefix + "cachesync:*applied*") { keys in
                        for key in keys { total += Int(try connection.command(["HGET", key, "events"]).text ?? "0") ?? 0 }
                        return true
                    }
                    return total
                }
                #expect(waitUntil(timeout: .seconds(30)) { ((try? applied()) ?? 0) >= 300 }, "\(sidecar.log)")
                sidecar.process.kill()
                let atKill = try applied()
                #expect(atKill < 1_052, "killed before the end (\(atKill) applied)")
                sidecar = try CacheSyncProcess(config: config, environment: ["CACHESYNC_INSTANCE_ID": "pre-1"])
                try sidecar.start()
                defer { sidecar.process.stop() }
                #expect(waitUntil(timeout: .seconds(60)) { ((try? applied()) ?? 0) >= 1_052 }, "\(sidecar.log)")

                let pool = try MongoClientPool(uri: server.uri)
                let documents = try pool.find(MongoNamespace(database: "app", collection: "users"))
                #expect(documents.count == 28)
                var expected: [String: String] = [:]
                for document in documents {
                    guard case .string(let email)? = document["email"], let id = document["_id"] else { continue }
                    expected[prefix + "user:email:" + email] = prefix + "users:" + DocumentID.keyText(id)
                }
                let found = try Self.secondaryKeys(connection, pattern: prefix + "user:email:*")
                #expect(found == expected, "\(found.count) keys for \(expected.count) users; extra: \(Set(found.keys).subtracting(expected.keys).prefix(5))")
                #expect(try Self.secondaryKeys(connection, pattern: prefix + "*:indexes").isEmpty, "pre-images need no record")
                let asked = server.aggregates.compactMap { ($0["changeStream"] as? [String: Any])?["fullDocumentBeforeChange"] as? String }
                #expect(asked.contains("whenAvailable"), "the stream asks for pre-images")
                let stats = HTTPHarness.get(port: httpPort, path: "/v1/stats")?.body ?? ""
                #expect(stats.contains(#""indexOldKeysFrom":"preImages""#), "\(stats)")
            }
        }
    }
}
