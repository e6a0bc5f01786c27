import BSONModel
import CacheSyncCore
import Foundation
import RedisBridge
import Testing
import TestSupport

/// The stored checkpoint text (as `Checkpoint.storedText` reads it) for `resumeAfter` a token.
private func resumeAfterText(_ token: String) -> String {
    #"{ "resumeAfter" : { "_data" : "\#(token)" } }"#
}

/// Every key under `prefix` except cachesync's own (checkpoints, leases, epochs) and the derived `:lease` and
/// `:access_count` keys: the cache entries, and whatever else the test planted.
private func cacheKeys(_ redis: RedisConnection, prefix: String) throws -> Set<String> {
    let reply = try redis.command(["KEYS", prefix + "*"])
    let all = (reply.array ?? []).compactMap(\.text)
    return Set(all.filter {
        !$0.hasPrefix(prefix + "cachesync:") && !$0.hasSuffix(":lease") && !$0.hasSuffix(":access_count")
    })
}

/// The value at `key`, or `nil`.
private func value(_ redis: RedisConnection, _ key: String) throws -> String? {
    try redis.command(["GET", key]).text
}

/// The value at `key` parsed as a JSON object, or `nil`.
private func object(_ redis: RedisConnection, _ key: String) throws -> [String: Any]? {
    guard let text = try value(redis, key) else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
}

/// How many events cachesync has applied to the namespace, from its `applied` counter in Redis.
private func appliedEvents(_ redis: RedisConnection, prefix: String, namespace: String) -> Int {
    let reply = try? redis.command(["HGET", prefix + "cachesync:applied:" + namespace, "events"])
    return reply?.text.flatMap { Int($0) } ?? 0
}

/// The stored checkpoint of the namespace as `(kind, token)`: kind `resumeAfter` or `startAfter`.
private func storedCheckpoint(_ redis: RedisConnection, prefix: String, namespace: String) -> (kind: String, token: String)? {
    guard let text = try? value(redis, prefix + "cachesync:resume:" + namespace),
          let stored = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    else { return nil }
    for kind in ["resumeAfter", "startAfter"] {
        if let token = (stored[kind] as? [String: Any])?["_data"] as? String { return (kind, token) }
    }
    return nil
}

/// The `_data` hex of an aggregate's `resumeAfter` or `startAfter`, `nil` when the record has `null`.
private func token(_ aggregate: [String: Any], _ kind: String) -> String? {
    aggregate[kind] as? String
}

/// Whether a recorded command's reply was `ok: 1`.
private func succeeded(_ command: [String: Any]) -> Bool {
    ((command["reply"] as? [String: Any])?["ok"] as? NSNumber)?.intValue == 1
}

/// The error code of a recorded command's failed reply.
private func errorCode(_ command: [String: Any]) -> Int? {
    ((command["reply"] as? [String: Any])?["code"] as? NSNumber)?.intValue
}

/// What went on, for a failed expectation: the sidecar's log and the server's record.
/// A started `cachesync run` (update strategy, lease on) against the scripted `scenario` and a fresh redis-server,
/// for `body`: the server, an admin connection, the test's key prefix and the process, stopped when `body` returns.
private func withSidecar<R>(scenario: String, extraArguments: [String] = [],
                            _ body: (ScriptedMongoServer, RedisConnection, String, CacheSyncProcess) throws -> R) throws -> R {
    try withRedisServer { redis in
        try withScriptedMongoServer(scenario: scenario, extraArguments: extraArguments) { server in
            let prefix = redis.key("")
            let sidecar = try CacheSyncProcess(config: server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next()))
            try sidecar.start()
            defer { sidecar.process.stop() }
            return try body(server, try redis.connect(), prefix, sidecar)
        }
    }
}

private func context(_ sidecar: CacheSyncProcess, _ server: ScriptedMongoServer) -> Comment {
    Comment(rawValue: "cachesync log:\n\(sidecar.log)\n--- scripted server record ---\n\(server.recordText)")
}

@Suite("cachesync run against the scripted MongoDB server (real change-event format)", .serialized)
struct ScriptedServerTests {
    @Test("basic: every event applied as the update strategy says; unknown event types are counted, logged and skipped")
    func basicScenario() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "basic") { server in
                let connection = try redis.connect()
                let prefix = redis.key("")
                let keys = prefix + "items:"
                let objectIdKey = keys + "665a0f0c1a2b3c4d5e6f7a01"
                let intKey = keys + "42"
                let stringKey = keys + "Zoë's key ☃ 集合 with spaces"
                let uuidKey = keys + "3b241101-e2bb-4255-8caf-4136c566a962"
                let shardedKey = keys + "665a0f0c1a2b3c4d5e6f7a02"
                // A checkpoint at the start of the script: no flush at start, so the stale values planted under
                // the expected key texts of the int and UUID ids survive unless cachesync deletes exactly those keys.
                let start = ScriptedMongoServer.highWaterToken(after: 0, position: 0)
                _ = try connection.command(["SET", prefix + "cachesync:resume:app.items", resumeAfterText(start)])
                _ = try connection.command(["SET", intKey, "stale"])
                _ = try connection.command(["SET", uuidKey, "stale"])

                let httpPort = try FreePort.next()
                let sidecar = try CacheSyncProcess(config: server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: httpPort))
                try sidecar.start()
                defer { sidecar.process.stop() }
                let done = waitUntil(timeout: .seconds(30)) {
                    appliedEvents(connection, prefix: prefix, namespace: "app.items") >= 12
                }
                #expect(done, context(sidecar, server))
                #expect(appliedEvents(connection, prefix: prefix, namespace: "app.items") == 12, context(sidecar, server))
                #expect(aggregateTokens(server).first == start, "cachesync resumed from the stored checkpoint")

                #expect(try cacheKeys(connection, prefix: prefix) == [objectIdKey, stringKey, shardedKey], context(sidecar, server))
                let updated = try #require(try object(connection, objectIdKey))
                #expect(updated["n"] as? Int == 2)
                #expect(updated["tags"] as? [String] == ["a", "x"])
                #expect(updated["old"] == nil)
                #expect((updated["_id"] as? [String: Any])?["$oid"] as? String == "665a0f0c1a2b3c4d5e6f7a01")
                let ttl = try connection.command(["TTL", objectIdKey]).integer ?? -1
                #expect(ttl > 0 && ttl <= 300, "an update-strategy key carries the base TTL, got \(ttl)")
                let replaced = try #require(try object(connection, stringKey))
                #expect(replaced["name"] as? String == "replaced")
                #expect(replaced["v"] as? Int == 2)
                #expect(try value(connection, intKey) == nil, "an update whose lookup is null deletes the key")
                #expect(try value(connection, uuidKey) == nil, "the delete of the UUID id removes its 8-4-4-4-12 key")
                let sharded = try #require(try object(connection, shardedKey))
                #expect(sharded["v"] as? Int == 2)
                #expect(sharded["region"] as? String == "eu")

                #expect(sidecar.log.contains("ignoring an event of unknown type createIndexes"), context(sidecar, server))
                #expect(sidecar.log.contains("ignoring an event of unknown type futureOp"), context(sidecar, server))
                let metrics = HTTPHarness.get(port: httpPort, path: "/metrics")?.body ?? ""
                for operation in ["createIndexes", "futureOp"] {
                    let counted = metrics.split(separator: "\n").contains {
                        $0.hasPrefix("cachesync_events_total{") && $0.contains(#"operation="\#(operation)""#) && $0.hasSuffix(" 1")
                    }
                    #expect(counted, "cachesync_events_total{operation=\"\(operation)\"} is not 1 in:\n\(metrics)")
                }
                #expect(sidecar.process.isRunning, context(sidecar, server))
            }
        }
    }

    @Test("history lost (286) with onHistoryLost: flush: the collection's keys are flushed and the stream restarts from now")
    func historyLostFlush() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "history_lost") { server in
                let connection = try redis.connect()
                let prefix = redis.key("")
                let keys = prefix + "items:"
                let otherKey = prefix + "other:keep"
                // Resume after #1, so nothing is flushed at start; the planted keys must go with the 286.
                let first = ScriptedMongoServer.eventToken(seq: 1)
                _ = try connection.command(["SET", prefix + "cachesync:resume:app.items", resumeAfterText(first)])
                for planted in ["h1", "planted"] { _ = try connection.command(["SET", keys + planted, "stale"]) }
                _ = try connection.command(["SET", otherKey, "keep"])

                let sidecar = try CacheSyncProcess(config: server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next(), lease: false))
                try sidecar.start()
                defer { sidecar.process.stop() }
                let done = waitUntil(timeout: .seconds(30)) { (try? value(connection, keys + "h3")) != nil }
                #expect(done, context(sidecar, server))
                #expect(try cacheKeys(connection, prefix: prefix) == [keys + "h3", otherKey], context(sidecar, server))
                #expect(try value(connection, otherKey) == "keep", "another collection's key survives the flush")

                let aggregates = server.aggregates
                let last = try #require(aggregates.last)
                #expect(token(last, "resumeAfter") == nil && token(last, "startAfter") == nil && succeeded(last),
                        "the stream restarts from now: \(last)")
                #expect(aggregates.contains { token($0, "resumeAfter") == ScriptedMongoServer.eventToken(seq: 2) && errorCode($0) == 286 },
                        "cachesync first tried its checkpoint (#2), which the server answers with 286")
                #expect(sidecar.log.contains("ChangeStreamHistoryLost") || sidecar.log.contains("code 286"), context(sidecar, server))
                #expect(sidecar.process.isRunning, context(sidecar, server))
            }
        }
    }

    @Test("history lost (286) with warmup: all: after the flush the collection's documents are cached again from a read of it")
    func historyLostWarmsUp() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "history_lost") { server in
                let connection = try redis.connect()
                let prefix = redis.key("")
                let keys = prefix + "items:"
                let first = ScriptedMongoServer.eventToken(seq: 1)
                _ = try connection.command(["SET", prefix + "cachesync:resume:app.items", resumeAfterText(first)])
                _ = try connection.command(["SET", keys + "planted", "stale"])

                let config = server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next(),
                                                    settings: ["warmup: { chunkSize: 1 }"], lease: false)
                let sidecar = try CacheSyncProcess(config: config)
                try sidecar.start()
                defer { sidecar.process.stop() }
                let done = waitUntil(timeout: .seconds(30)) {
                    sidecar.log.contains("warm-up finished") && (try? value(connection, keys + "h3")) != nil
                }
                #expect(done, context(sidecar, server))
                let log = sidecar.log
                #expect(log.contains("code 286") || log.contains("ChangeStreamHistoryLost"), context(sidecar, server))
                let flushed = try #require(log.range(of: "restarted from now"), context(sidecar, server))
                let started = try #require(log.range(of: "warm-up started"), context(sidecar, server))
                #expect(flushed.upperBound <= started.lowerBound, "the warm-up starts after the flush")
                // h1 and h2 were flushed with the lost history and come back from the read; the planted key stays gone.
                #expect(try cacheKeys(connection, prefix: prefix) == [keys + "h1", keys + "h2", keys + "h3"], context(sidecar, server))
                #expect(try value(connection, keys + "h1") == #"{"_id":"h1","v":1}"#)
                #expect(try value(connection, keys + "h2") == #"{"_id":"h2","v":2}"#)
                #expect(server.commands("find").count >= 3, "one find per chunk of one document: \(server.commands("find"))")
                #expect(try connection.command(["GET", prefix + "cachesync:warmup:app.items"]).text == nil,
                        "the finished warm-up leaves no position")
            }
        }
    }

    @Test("an event that cannot be decoded deletes the key of the document it names, or flushes the collection when it names none; the stream goes on")
    func undecodableEvents() throws {
        try withSidecar(scenario: "poison") { server, connection, prefix, sidecar throws in
            let keys = prefix + "items:"
            let done = waitUntil(timeout: .seconds(30)) { (try? value(connection, keys + "p5")) != nil }
            #expect(done, context(sidecar, server))
            // The undecodable insert naming no document flushed p2; p1's cached copy went with the undecodable
            // event naming it; p3 and p5 stay.
            #expect(try cacheKeys(connection, prefix: prefix) == [keys + "p3", keys + "p5"], context(sidecar, server))
            #expect(sidecar.log.components(separatedBy: "an event that cannot be decoded (").count - 1 == 2, context(sidecar, server))
            #expect(sidecar.log.contains("the key of the document it names is deleted"))
            #expect(sidecar.log.contains("it names no document, so the collection is flushed"))
            #expect(!sidecar.log.contains("not a document\""), "no event content in the log")
            #expect(sidecar.process.isRunning, context(sidecar, server))
        }
    }

    @Test("an event over 16 MiB (10334 on getMore) on a server that cannot split it: the stream reopens without documents, the document's key is deleted rather than left stale, and once caught up it reopens with documents")
    func eventTooLargeWithoutSplitting() throws {
        try withSidecar(scenario: "large_event", extraArguments: ["--server-version", "6.0.8"]) { server, connection, prefix, sidecar throws in
            let keys = prefix + "items:"
            let reopened = waitUntil(timeout: .seconds(30)) {
                let slim = server.aggregates.map { $0["slim"] as? Bool ?? false }
                return slim.contains(true) && slim.last == false && sidecar.log.contains("reopening the change stream with documents")
            }
            #expect(reopened, context(sidecar, server))
            #expect(server.commands("getMore").contains { errorCode($0) == 10334 }, "the 10334 was served")
            #expect(!server.aggregates.contains { $0["split"] as? Bool == true }, "6.0.8 cannot split events")
            // l1's cached {v:1} went with its oversized update (never left stale); l3 came while slim, so it was
            // deleted rather than written; l2 stays.
            #expect(try cacheKeys(connection, prefix: prefix) == [keys + "l2"], context(sidecar, server))
            #expect(sidecar.log.contains("code 10334"), context(sidecar, server))
            #expect(sidecar.process.isRunning, context(sidecar, server))
        }
    }

    @Test("an event over 16 MiB on a server that splits events: the stream reopens with $changeStreamSplitLargeEvent and the fragments are put back together")
    func eventTooLargeSplit() throws {
        try withSidecar(scenario: "large_event") { server, connection, prefix, sidecar throws in
            let keys = prefix + "items:"
            let done = waitUntil(timeout: .seconds(30)) { (try? value(connection, keys + "l3")) != nil }
            #expect(done, context(sidecar, server))
            #expect(server.commands("getMore").contains { errorCode($0) == 10334 }, "the 10334 was served")
            #expect(server.aggregates.last?["split"] as? Bool == true, "reopened with $changeStreamSplitLargeEvent")
            #expect(try object(connection, keys + "l1")?["v"] as? Int == 2, "the split update, put back together, was applied")
            #expect(try cacheKeys(connection, prefix: prefix) == [keys + "l1", keys + "l2", keys + "l3"], context(sidecar, server))
            #expect(!sidecar.log.contains("cannot be decoded"), context(sidecar, server))
            #expect(sidecar.process.isRunning, context(sidecar, server))
        }
    }

    @Test("history lost (286) with onHistoryLost: fail: the process exits 1 within seconds with a clear message")
    func historyLostFail() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "history_lost") { server in
                let prefix = redis.key("")
                let config = server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next(), settings: ["onHistoryLost: fail"])
                let sidecar = try CacheSyncProcess(config: config)
                let started = ContinuousClock.now
                try sidecar.start()
                defer { sidecar.process.kill() }
                let exited = sidecar.process.waitForExit(timeout: .seconds(20))
                let elapsed = ContinuousClock.now - started
                #expect(exited, context(sidecar, server))
                #expect(elapsed < .seconds(5), "exited after \(elapsed)")
                #expect(sidecar.process.exitStatus == 1, context(sidecar, server))
                #expect(sidecar.log.contains("onHistoryLost is fail"), context(sidecar, server))
                #expect(sidecar.log.contains("ChangeStreamHistoryLost") || sidecar.log.contains("code 286"), context(sidecar, server))
                #expect(server.commands("getMore").contains { errorCode($0) == 286 }, "the 286 was served")
            }
        }
    }

    @Test("a labelled resumable error that reaches cachesync: it reopens from the token stored in Redis and goes on")
    func resumableError() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "resumable", extraArguments: ["--fail-resumes", "2"]) { server in
                let connection = try redis.connect()
                let prefix = redis.key("")
                let keys = prefix + "items:"
                let sidecar = try CacheSyncProcess(config: server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next()))
                try sidecar.start()
                defer { sidecar.process.stop() }
                let done = waitUntil(timeout: .seconds(30)) {
                    (try? value(connection, keys + "r3")) != nil && (try? object(connection, keys + "r1"))?["v"] as? Int == 10
                }
                #expect(done, context(sidecar, server))
                #expect(try cacheKeys(connection, prefix: prefix) == [keys + "r1", keys + "r2", keys + "r3"], context(sidecar, server))
                #expect(try object(connection, keys + "r2")?["v"] as? Int == 2)

                let sent = server.sentEvents
                let lastBeforeError = try #require(sent.first { $0.seq == 2 }, "event #2 was sent")
                let reopens = server.aggregates.filter { token($0, "resumeAfter") != nil || token($0, "startAfter") != nil }
                #expect(reopens.count >= 3, "libmongoc's resume, its retry and cachesync's own reopen: \(reopens)")
                #expect(reopens.allSatisfy { token($0, "resumeAfter") == lastBeforeError.token }, context(sidecar, server))
                #expect(reopens.dropLast().allSatisfy { errorCode($0) == 91 }, context(sidecar, server))
                #expect(reopens.last.map(succeeded) == true, context(sidecar, server))
                #expect(sidecar.log.contains("reconnecting in"), "cachesync saw the error and backed off")
                #expect(sidecar.log.contains("change stream opened from the stored checkpoint"), context(sidecar, server))

                // The checkpoint in Redis keeps following the stream: it ends at the last token the server sent.
                let lastSent = server.commands("getMore").compactMap { ($0["reply"] as? [String: Any])?["postBatchResumeToken"] as? String }
                let caughtUp = waitUntil(timeout: .seconds(10)) {
                    let latest = server.commands("getMore").last.flatMap { ($0["reply"] as? [String: Any])?["postBatchResumeToken"] as? String }
                    return storedCheckpoint(connection, prefix: prefix, namespace: "app.items")?.token == latest
                }
                #expect(caughtUp, "stored \(String(describing: storedCheckpoint(connection, prefix: prefix, namespace: "app.items"))), sent \(lastSent.suffix(3))")
                #expect(sidecar.process.isRunning, context(sidecar, server))
            }
        }
    }

    @Test("drop, rename and dropDatabase flush the collection's keys; the invalidate reopens with startAfter",
          arguments: [("drop", "p", true), ("rename", "n", false), ("dropDatabase", "d", false)])
    func collectionEvent(scenario: String, idPrefix: String, lease: Bool) throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: scenario) { server in
                let connection = try redis.connect()
                let prefix = redis.key("")
                let keys = prefix + "items:"
                let otherKey = prefix + "other:keep"
                let start = ScriptedMongoServer.highWaterToken(after: 0, position: 0)
                _ = try connection.command(["SET", prefix + "cachesync:resume:app.items", resumeAfterText(start)])
                _ = try connection.command(["SET", keys + "planted", "stale"])
                _ = try connection.command(["SET", otherKey, "keep"])

                let sidecar = try CacheSyncProcess(config: server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next(), lease: lease))
                try sidecar.start()
                defer { sidecar.process.stop() }
                let newKey = keys + idPrefix + "3"
                let done = waitUntil(timeout: .seconds(30)) { (try? value(connection, newKey)) != nil }
                #expect(done, context(sidecar, server))
                #expect(try cacheKeys(connection, prefix: prefix) == [newKey, otherKey], context(sidecar, server))
                #expect(try value(connection, otherKey) == "keep")

                let invalidate = try #require(server.sentEvents.first { $0.operationType == "invalidate" })
                let aggregates = server.aggregates
                #expect(aggregates.contains { token($0, "startAfter") == invalidate.token && succeeded($0) },
                        context(sidecar, server))
                #expect(!aggregates.contains { token($0, "resumeAfter") == invalidate.token },
                        "resumeAfter an invalidate token is refused by real servers (260)")
                #expect(!aggregates.contains { token($0, "resumeAfter") == nil && token($0, "startAfter") == nil },
                        "the stream never restarted from now (changes could be missed)")
                let checkpoint = storedCheckpoint(connection, prefix: prefix, namespace: "app.items")
                #expect(checkpoint?.kind == "resumeAfter", "after the new insert the checkpoint is a plain resume token")
                #expect(sidecar.process.isRunning, context(sidecar, server))
            }
        }
    }

    @Test("hostile ids of every BSON type, a near-16 MiB document and a unicode collection name: no crash, correct keys")
    func hostileScenario() throws {
        try withRedisServer { redis in
            try withScriptedMongoServer(scenario: "hostile") { server in
                let connection = try redis.connect()
                let prefix = redis.key("")
                let namespace = "app." + server.collection
                let keys = prefix + server.collection + ":"
                let sidecar = try CacheSyncProcess(config: server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: try FreePort.next(), lease: false))
                try sidecar.start()
                defer { sidecar.process.stop() }
                let done = waitUntil(timeout: .seconds(90)) {
                    appliedEvents(connection, prefix: prefix, namespace: namespace) >= 28
                }
                #expect(done, context(sidecar, server))
                #expect(appliedEvents(connection, prefix: prefix, namespace: namespace) == 28, "nothing silently dropped")

                let found = try cacheKeys(connection, prefix: prefix)
                let defined = ["1", "-0.1", "-7", "9007199254740993", "1.10", "AAH+/yBiaW4=",
                               "00112233-4455-6677-8899-aabbccddeeff", "2024-05-06T07:08:09.123Z",
                               #"{"a":1,"b":"x"}"#, #"[1,"two",{"three":3}]"#, "665a0f0c1a2b3c4d5e6f7a99",
                               "  ünï cödé ☃ 🚀 集合  ", ""]
                for id in defined {
                    #expect(found.contains(keys + id), "key for _id text \(id) is missing; keys: \(found.sorted())")
                }
                // 22 inserted ids, minus the deleted 2.5 and null; the big document is never cached.
                #expect(found.count == 20, "keys: \(found.sorted())")
                #expect(found.allSatisfy { $0.hasPrefix(keys) }, "keys: \(found.sorted())")
                #expect(!found.contains { $0.contains("\n") || $0.contains("\0") }, "a key holds a raw newline or NUL")
                #expect(!found.contains(keys + "2.5") && !found.contains(keys + "big-16mb"))
                for key in found {
                    let label = try object(connection, key)?["label"] as? String
                    #expect(label != nil, "\(key) does not hold its document")
                }
                let int64Value = try #require(try value(connection, keys + "9007199254740993"))
                #expect(int64Value.contains("9007199254740993") && int64Value.contains(#""label":"updated""#), "\(int64Value)")
                #expect(try object(connection, keys + #"{"a":1,"b":"x"}"#)?["label"] as? String == "updated")
                if redis.isManaged {
                    let info = try connection.command(["INFO", "memory"]).text ?? ""
                    let peak = info.split(separator: "\r\n").first { $0.hasPrefix("used_memory_peak:") }
                        .flatMap { Int($0.dropFirst("used_memory_peak:".count)) } ?? Int.max
                    #expect(peak < 8 << 20, "the near-16 MiB document was never written to Redis (peak \(peak) bytes)")
                }
                #expect(sidecar.process.isRunning, context(sidecar, server))
            }
        }
    }

    @Test("a UUID _id read through the API: found in MongoDB by its binary subtype 4 value, answered and cached under its text")
    func binaryIDReadThrough() throws {
        try withRedisServer { redis in
            // The hostile script inserts the UUID 00112233-4455-6677-8899-aabbccddeeff (binary subtype 4) and never
            // deletes it; the invalidate strategy never caches a document itself, so only the read can.
            try withScriptedMongoServer(scenario: "hostile", collection: "items") { server in
                let connection = try redis.connect()
                let prefix = redis.key("")
                let httpPort = try FreePort.next()
                let config = server.cachesyncConfig(redis: redis, keyPrefix: prefix, httpPort: httpPort, strategy: "invalidate",
                                                    settings: ["idType: uuid"])
                let sidecar = try CacheSyncProcess(config: config)
                try sidecar.start()
                defer { sidecar.process.stop() }
                // Once every event is applied, the server's collection holds what the script inserted.
                let done = waitUntil(timeout: .seconds(90)) { appliedEvents(connection, prefix: prefix, namespace: "app.items") >= 28 }
                #expect(done, context(sidecar, server))

                let uuid: [UInt8] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
                let document: BSONDocument = ["_id": .binary(subtype: 4, data: uuid), "label": .string("uuid subtype 4")]
                let key = prefix + "items:00112233-4455-6677-8899-aabbccddeeff"
                let miss = try #require(HTTPHarness.get(port: httpPort, path: "/v1/cache/items/00112233-4455-6677-8899-AABBCCDDEEFF"),
                                        context(sidecar, server))
                #expect(miss.status == 200, "\(miss.body)")
                #expect(miss.headers["x-cache"] == "MISS")
                #expect(miss.body == ExtendedJSON.relaxed(document), context(sidecar, server))
                let finds = server.commands("find").compactMap { $0["filter"] as? [String: Any] }
                let binary = (finds.last?["_id"] as? [String: Any])?["$binary"] as? [String: Any]
                #expect(binary?["base64"] as? String == "ABEiM0RVZneImaq7zN3u/w==" && binary?["subType"] as? String == "04",
                        "the find filter is the UUID as binary subtype 4: \(finds)")
                #expect(try value(connection, key) == miss.body, "cached under the 8-4-4-4-12 key")
                let hit = try #require(HTTPHarness.get(port: httpPort, path: "/v1/cache/items/00112233-4455-6677-8899-aabbccddeeff"))
                #expect(hit.headers["x-cache"] == "HIT" && hit.body == miss.body)

                // Another UUID is not in the collection: the filter matched by value, not by chance.
                let absent = try #require(HTTPHarness.get(port: httpPort, path: "/v1/cache/items/3b241101-e2bb-4255-8caf-4136c566a962"))
                #expect(absent.status == 404, "\(absent.body)")
                #expect(sidecar.process.isRunning, context(sidecar, server))
            }
        }
    }
}

/// The tokens of every token-carrying aggregate, in order.
private func aggregateTokens(_ server: ScriptedMongoServer) -> [String] {
    server.aggregates.compactMap { token($0, "resumeAfter") ?? token($0, "startAfter") }
}
