import BSONModel
import CacheSync
import Foundation
import MongoBridge
import RedisBridge
import TestSupport

/// Warm-up speed and footprint (issue 21): the release binary warming a collection of nx-27017 up, beside a plain
/// `find` of the same collection on the same server (the limit: reading the documents at all).
struct WarmupBenchmark {
    /// What one run measured.
    struct Result {
        /// Documents in the collection.
        var documents = 0
        /// A plain `find` of the whole collection, its documents copied out of libmongoc: the best of three, docs/s.
        var findRate = 0.0
        /// The warm-up's own rate (from its `warm-up finished` line) per `share` tried.
        var warmupRates: [(share: Double, rate: Double, seconds: Double, rss: ResidentMemorySampler.Peak)] = []
        /// The same binary with `warmup: none` on the same collection, over as long as the slowest warm-up took.
        var noWarmupRSS = ResidentMemorySampler.Peak()
    }

    let documents: Int
    let shares: [Double]

    /// Runs the measurement; progress goes to standard error.
    func run() throws -> Result {
        let redisServer = try RedisTestServer()
        let mongo = try MongoTestServer(.init(inMemory: true))
        defer {
            redisServer.cleanUp()
            mongo.cleanUp()
        }
        let pool = try MongoClientPool(uri: mongo.uri)
        let redis = try redisServer.connect()
        defer { redis.close() }
        let ns = MongoNamespace(database: mongo.database, collection: "products")
        log("warm-up: inserting \(documents) documents")
        for start in stride(from: 0, to: documents, by: 1_000) {
            try pool.insertMany(ns, (start..<min(start + 1_000, documents)).map(Self.product))
        }
        var result = Result(documents: documents)
        for _ in 0..<3 {
            let t0 = Measure.now()
            let found = try pool.findBytes(ns)
            let elapsed = Measure.now() - t0
            guard found.count == documents else { throw BenchError("find returned \(found.count) of \(documents) documents") }
            result.findRate = max(result.findRate, Double(documents) / elapsed)
        }
        var longest = 0.0
        for share in shares {
            log("warm-up: share \(share)")
            _ = try redis.command(["FLUSHALL"])
            let (rate, seconds, rss) = try warmUp(mongo: mongo, redisPort: redisServer.port,
                                                   warmup: "{ share: \(share) }", expectKeys: documents, redis: redis)
            result.warmupRates.append((share, rate, seconds, rss))
            longest = max(longest, seconds)
        }
        log("warm-up: the same binary without warm-up")
        _ = try redis.command(["FLUSHALL"])
        result.noWarmupRSS = try withoutWarmup(mongo: mongo, redisPort: redisServer.port, seconds: max(3, longest))
        return result
    }

    /// The binary warming the collection up: its rate and time (from its log) and the peak resident memory from start
    /// to the end of the warm-up.
    private func warmUp(mongo: MongoTestServer, redisPort: Int, warmup: String, expectKeys: Int,
                        redis: any RedisClient) throws -> (Double, Double, ResidentMemorySampler.Peak) {
        let process = try CacheSyncProcess(config: config(mongo: mongo, redisPort: redisPort, warmup: warmup))
        try process.start()
        defer { process.process.stop() }
        guard let pid = process.process.pid else { throw BenchError("cachesync is not running") }
        let sampler = ResidentMemorySampler(pid: pid)
        guard waitUntil(timeout: .seconds(900), { process.log.contains("warm-up finished") }) else {
            _ = sampler.stop()
            throw BenchError("the warm-up did not finish; the log:\n\(process.log.suffix(3000))")
        }
        let rss = sampler.stop()
        // From the log line that starts the warm-up (after the flush) to the one that ends it, by their timestamps.
        let lines = process.log.components(separatedBy: "\n")
        guard let start = Self.timestamp(lines.first { $0.contains("warm-up started") }),
              let end = Self.timestamp(lines.first { $0.contains("warm-up finished") }) else {
            throw BenchError("no warm-up lines with timestamps in the log:\n\(process.log.suffix(2000))")
        }
        let seconds = end.timeIntervalSince(start)
        let keys = try redis.command(["EVAL", "return #redis.call('KEYS', 'products:*')", "0"]).integer ?? 0
        guard keys == expectKeys else { throw BenchError("the warm-up cached \(keys) of \(expectKeys) documents") }
        return (Double(documents) / max(seconds, 0.001), seconds, rss)
    }

    /// The peak resident memory of the binary without warm-up on the same collection, from start over `seconds`.
    private func withoutWarmup(mongo: MongoTestServer, redisPort: Int, seconds: Double) throws -> ResidentMemorySampler.Peak {
        let process = try CacheSyncProcess(config: config(mongo: mongo, redisPort: redisPort, warmup: "none"))
        try process.start()
        defer { process.process.stop() }
        guard let pid = process.process.pid else { throw BenchError("cachesync is not running") }
        let sampler = ResidentMemorySampler(pid: pid)
        Thread.sleep(forTimeInterval: seconds)
        return sampler.stop()
    }

    private func config(mongo: MongoTestServer, redisPort: Int, warmup: String) throws -> String {
        """
        mongodb: { uri: "\(mongo.uri)", database: \(mongo.database) }
        redis: { url: "redis://127.0.0.1:\(redisPort)/0" }
        http: { listen: "127.0.0.1:\(try FreePort.next())" }
        collections:
          products: { strategy: update, warmup: \(warmup) }
        """
    }

    /// A product document of about 300 bytes of JSON, its `_id` zero-padded text (nx-27017 sorts integer `_id`s as
    /// text, which a chunked read by `_id` cannot follow).
    private static func product(_ n: Int) -> BSONDocument {
        let digits = String(n)
        return [
            "_id": .string("p" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits),
            "name": .string("product \(n)"),
            "price": .double(Double(n % 1000) + 0.99),
            "stock": .int32(Int32(n % 500)),
            "tags": .array([.string("tag\(n % 7)"), .string("tag\(n % 11)")]),
            "description": .string(String(repeating: "lorem ipsum ", count: 16)),
        ]
    }

    /// The `ts` of a JSON log line (`2026-12-03T18:04:02.839Z`).
    private static func timestamp(_ line: String?) -> Date? {
        guard let line, let range = line.range(of: #""ts":""#) else { return nil }
        let text = String(line[range.upperBound...].prefix { $0 != "\"" })
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    private func log(_ text: String) {
        FileHandle.standardError.write(Data("bench: \(text)\n".utf8))
    }
}
