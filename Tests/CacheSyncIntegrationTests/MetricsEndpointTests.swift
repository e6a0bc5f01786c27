import BSONModel
import Foundation
import MongoBridge
import Testing
import TestSupport

extension HTTPAPITests {
    /// `/metrics` and `/v1/stats` after a scripted workload, parsed by prometheus_client's text parser.
    @Suite("Metrics endpoint")
    struct MetricsEndpointTests {
        /// One parsed sample.
        struct Sample: Decodable {
            /// Sample name (`cachesync_reads_total`, `cachesync_apply_seconds_count`, …).
            var name: String
            /// Its labels.
            var labels: [String: String]
            /// Its value.
            var value: Double
        }

        /// What `Tests/Scripted/parse_metrics.py` prints.
        struct Parsed: Decodable {
            /// Family name to type.
            var families: [String: String]
            /// Every sample.
            var samples: [Sample]

            /// The value of `name` with exactly these labels.
            func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
                samples.first { $0.name == name && $0.labels == labels }?.value
            }
        }

        @Test("/metrics parses as Prometheus text, holds every docs/ARCHITECTURE.md §7 metric with the workload's values; stats hitRate matches")
        func metricsAfterWorkload() throws {
            let started = Date().timeIntervalSince1970
            let harness = try HTTPHarness(collections: """
                  users:
                    strategy: invalidate
                  products:
                    strategy: update
                """, collectionCount: 2)
            defer { harness.stop() }
            let pool = try harness.mongoPool()
            let users = harness.namespace("users"), products = harness.namespace("products")
            try pool.insertOne(users, ["_id": .string("alice"), "n": .int32(1)])
            for i in 1...3 {
                try pool.insertOne(products, ["_id": .int32(Int32(i)), "price": .int32(Int32(i * 10))])
            }
            try pool.updateOne(products, filter: ["_id": .int32(1)], update: ["$set": .document(["price": .int32(11)])])
            try pool.deleteOne(products, filter: ["_id": .int32(3)])
            for _ in 0..<3 { _ = try harness.get("/v1/cache/users/alice") }
            #expect(try harness.get("/v1/cache/users/bob").status == 404)
            try pool.updateOne(users, filter: ["_id": .string("alice")], update: ["$set": .document(["n": .int32(2)])])
            #expect(harness.waitForEvents("products", atLeast: 5))
            #expect(harness.waitForEvents("users", atLeast: 2))
            Thread.sleep(forTimeInterval: 1.2)

            let text = try harness.get("/metrics").body
            let parsed = try Self.parse(text)
            let u = "\(harness.mongo.database).users", p = "\(harness.mongo.database).products"
            let expectedFamilies = [
                "cachesync_events": "counter", "cachesync_cache_writes": "counter", "cachesync_reads": "counter",
                "cachesync_hit_ratio": "gauge", "cachesync_lag_seconds": "gauge", "cachesync_apply_seconds": "histogram",
                "cachesync_stream_restarts": "counter", "cachesync_resyncs": "counter",
                "cachesync_last_event_timestamp_seconds": "gauge", "cachesync_leader": "gauge",
                "cachesync_seconds_since_last_event": "gauge",
            ]
            for (family, type) in expectedFamilies {
                #expect(parsed.families[family] == type, "\(family) should be a \(type), found \(parsed.families[family] ?? "nothing")")
            }
            #expect(parsed.value("cachesync_reads_total", ["collection": u, "result": "hit"]) == 2)
            #expect(parsed.value("cachesync_reads_total", ["collection": u, "result": "miss"]) == 2)
            #expect(parsed.value("cachesync_reads_total", ["collection": p, "result": "hit"]) == 0)
            #expect(parsed.value("cachesync_hit_ratio", ["collection": u]) == 0.5)
            #expect(parsed.value("cachesync_hit_ratio", ["collection": p]) == 0)
            #expect(parsed.value("cachesync_events_total", ["collection": p, "operation": "insert"]) == 3)
            #expect(parsed.value("cachesync_events_total", ["collection": p, "operation": "update"]) == 1)
            #expect(parsed.value("cachesync_events_total", ["collection": p, "operation": "delete"]) == 1)
            #expect(parsed.value("cachesync_events_total", ["collection": u, "operation": "update"]) == 1)
            #expect(parsed.value("cachesync_cache_writes_total", ["collection": p, "action": "set"]) == 4)
            #expect(parsed.value("cachesync_cache_writes_total", ["collection": p, "action": "delete"]) == 1)
            #expect(parsed.value("cachesync_cache_writes_total", ["collection": u, "action": "delete"]) == 1)
            #expect(parsed.value("cachesync_leader", ["collection": u]) == 1)
            #expect(parsed.value("cachesync_leader", ["collection": p]) == 1)
            #expect(parsed.value("cachesync_resyncs_total", ["collection": u, "reason": "no_checkpoint"]) == 1)
            #expect(parsed.value("cachesync_stream_restarts_total", ["collection": u, "reason": "mongodb"]) == 0)
            #expect((parsed.value("cachesync_apply_seconds_count") ?? 0) >= 2)
            #expect(parsed.value("cachesync_apply_seconds_bucket", ["le": "+Inf"]) == parsed.value("cachesync_apply_seconds_count"))
            let lastEvent = parsed.value("cachesync_last_event_timestamp_seconds", ["collection": p]) ?? 0
            #expect(lastEvent >= started - 5 && lastEvent <= Date().timeIntervalSince1970 + 5)
            let lag = parsed.value("cachesync_lag_seconds", ["collection": p]) ?? -1
            #expect(lag >= 0 && lag < 10)
            let silence = parsed.value("cachesync_seconds_since_last_event", ["collection": p]) ?? -1
            #expect(silence >= 0 && silence < 30)

            let stats = try harness.get("/v1/stats").json
            let userStats = (stats?["collections"] as? [String: Any])?[u] as? [String: Any]
            #expect(userStats?["hits"] as? Int == 2)
            #expect(userStats?["misses"] as? Int == 2)
            #expect(userStats?["invalidations"] as? Int == 1)
            let totals = stats?["totals"] as? [String: Any]
            let hits = totals?["hits"] as? Int ?? -1, misses = totals?["misses"] as? Int ?? -1
            #expect(hits + misses == 4)
            #expect(totals?["hitRate"] as? Double == Double(hits) / Double(hits + misses))
            #expect(totals?["events"] as? Int == 7)
        }

        /// Runs `Tests/Scripted/parse_metrics.py` on `text`.
        static func parse(_ text: String) throws -> Parsed {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let environment = ProcessInfo.processInfo.environment
            let python = environment["CACHESYNC_PYTHON"]
                ?? [root.appendingPathComponent(".venv/bin/python").path].first { FileManager.default.isExecutableFile(atPath: $0) }
                ?? "/usr/bin/env"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            let script = root.appendingPathComponent("Tests/Scripted/parse_metrics.py").path
            process.arguments = python == "/usr/bin/env" ? ["python3", script] : [script]
            let input = Pipe(), output = Pipe(), errors = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            input.fileHandleForWriting.write(Data(text.utf8))
            try input.fileHandleForWriting.close()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw HarnessError(message: "parse_metrics.py (\(python)) failed: \(message)\n--- metrics ---\n\(text)")
            }
            return try JSONDecoder().decode(Parsed.self, from: data)
        }
    }
}
