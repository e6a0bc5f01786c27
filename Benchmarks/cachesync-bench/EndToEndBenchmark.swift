import BSONModel
import Foundation
import MongoBridge
import RedisBridge
import RedisSlot
import TestSupport

/// The real `cachesync` binary between nx-27017 and redis-server, measured beside a bare change stream reading the
/// same writes from the same server: bulk convergence, per-write lag at a steady rate, start-to-ready time, memory
/// and CPU.
struct EndToEndBenchmark {
    /// What one run measured.
    struct Result {
        var readySeconds: [Double] = []
        var idleRSS = ResidentMemorySampler.Peak()
        var idleCPU = 0.0
        var bulkWrites = 0
        var bulkAccepted = 0.0
        var bulkReference = 0.0
        var bulkSidecar = 0.0
        var lagWrites = 0
        var rate = 0.0
        var referenceLags: [Double] = []
        var sidecarLags: [Double] = []
        var lagCPU = 0.0
        /// Peak resident memory in the bulk run, the steady-rate run, and the burst on all three collections.
        var bulkRSS = ResidentMemorySampler.Peak()
        var steadyRSS = ResidentMemorySampler.Peak()
        var burstRSS = ResidentMemorySampler.Peak()
    }

    let bulkWrites: Int
    let lagWrites: Int
    let rate: Double
    let readyRuns: Int
    /// Whether Redis is a 6-node Redis Cluster (three masters, three replicas) instead of one server.
    var cluster = false

    func run() throws -> Result {
        let bed = cluster ? try RedisClusterBed() : nil
        let redisServer = try bed?.nodes[0] ?? RedisTestServer()
        let mongo = try MongoTestServer(.init(inMemory: true))
        defer {
            if let bed { bed.cleanUp() } else { redisServer.cleanUp() }
            mongo.cleanUp()
        }
        let pool = try MongoClientPool(uri: mongo.uri)
        let redis: any RedisClient = try bed?.client() ?? redisServer.connect()
        func namespace(_ name: String) -> MongoNamespace { MongoNamespace(database: mongo.database, collection: name) }
        // Collections exist before any stream opens (nx-27017 does not deliver to watches on later-created ones).
        for name in ["products", "users", "sessions"] {
            try pool.insertOne(namespace(name), ["_id": .string("warmup")])
        }
        let httpPort = try FreePort.next()
        let config = """
            mongodb: { uri: "\(mongo.uri)", database: \(mongo.database) }
            redis: { url: "redis://127.0.0.1:\(redisServer.port)/0"\(bed.map { ", cluster: { nodes: [\($0.seedAddresses.map { "\"\($0)\"" }.joined(separator: ", "))] }" } ?? "") }
            http: { listen: "127.0.0.1:\(httpPort)" }
            collections:
              products: { strategy: update }
              users: { strategy: invalidate }
              sessions: { strategy: preserve-ttl }
            """
        var result = Result()

        log("start to ready, \(readyRuns) starts")
        var sidecar: CacheSyncProcess?
        for run in 0..<readyRuns {
            let process = try CacheSyncProcess(config: config)
            let started = Measure.now()
            try process.start()
            guard waitUntil(timeout: .seconds(20), { Self.isReady(port: httpPort) }) else {
                throw BenchError("cachesync did not become ready; its log:\n\(process.log)")
            }
            result.readySeconds.append(Measure.now() - started)
            if run < readyRuns - 1 { process.process.stop() } else { sidecar = process }
        }
        guard let sidecar, let pid = sidecar.process.pid else { throw BenchError("cachesync is not running") }
        defer { sidecar.process.stop() }

        log("idle footprint")
        sleep(2)
        result.idleRSS = ResidentMemorySampler.Peak(resident: Measure.residentMiB(pid), private: Measure.privateMiB(pid))
        let idleCPU0 = Measure.cpuSeconds(pid)
        let idleStart = Measure.now()
        sleep(5)
        result.idleCPU = (Measure.cpuSeconds(pid) - idleCPU0) / (Measure.now() - idleStart)

        // The bare stream watches the same collection as cachesync and sees the same writes, so both are timed
        // against the same server behaviour (its insert speed and delivery), not two runs of it.
        var sampler = ResidentMemorySampler(pid: pid)
        result.bulkWrites = bulkWrites
        log("bulk: \(bulkWrites) inserts")
        let appliedKey = cluster ? "cachesync:applied:{\(mongo.database).products}" : "cachesync:applied:\(mongo.database).products"
        let appliedBefore = try appliedEvents(redis, appliedKey)
        let bulkReference = try ReferenceConsumer(pool: pool, namespace: namespace("products"), expected: bulkWrites)
        let bulkStart = Measure.now()
        try bulkInsert(pool, namespace("products"), ids: 0..<bulkWrites)
        result.bulkAccepted = Measure.now() - bulkStart
        guard waitUntil(timeout: .seconds(300), { (try? appliedEvents(redis, appliedKey)) ?? 0 >= appliedBefore + bulkWrites }) else {
            throw BenchError("cachesync did not apply the bulk inserts")
        }
        result.bulkSidecar = Measure.now() - bulkStart
        guard let arrivals = bulkReference.wait(timeout: 300) else { throw BenchError("the bare change stream missed events") }
        result.bulkReference = arrivals.values.max()! - bulkStart

        result.bulkRSS = sampler.stop()

        result.lagWrites = lagWrites
        result.rate = rate
        log("lag: \(lagWrites) inserts at \(Int(rate))/s")
        let firstID = 1_000_000
        let ids = firstID..<(firstID + lagWrites)
        let lagReference = try ReferenceConsumer(pool: pool, namespace: namespace("products"), expected: lagWrites)
        // On a cluster each master announces its own keys: one watcher per master, expecting the ids of its slots.
        var expected: [Int: Int] = [:]
        if let client = redis as? RedisCluster {
            for id in ids { expected[try client.connection(forSlot: RedisSlot.of("products:\(id)")).options.port, default: 0] += 1 }
        } else {
            expected[redisServer.port] = lagWrites
        }
        let keyspaces = try expected.map { try KeyspaceWatcher(redisPort: $0.key, prefix: "products:", expected: $0.value) }
        sampler = ResidentMemorySampler(pid: pid)
        let lagCPU0 = Measure.cpuSeconds(pid)
        let lagStart = Measure.now()
        let sent = try pacedInserts(pool, namespace("products"), ids: ids)
        var visible: [Int: Double] = [:]
        for keyspace in keyspaces {
            guard let seen = keyspace.wait(timeout: 120) else { throw BenchError("not every write reached Redis") }
            visible.merge(seen) { $1 }
        }
        result.lagCPU = (Measure.cpuSeconds(pid) - lagCPU0) / (Measure.now() - lagStart)
        guard let delivered = lagReference.wait(timeout: 120) else { throw BenchError("the bare change stream missed events") }
        result.referenceLags = ids.map { delivered[$0]! - sent[$0]! }
        result.sidecarLags = ids.map { visible[$0]! - sent[$0]! }

        result.steadyRSS = sampler.stop()

        log("burst on all three collections")
        sampler = ResidentMemorySampler(pid: pid)
        try bulkInsert(pool, namespace("users"), ids: 0..<bulkWrites / 2)
        try bulkInsert(pool, namespace("sessions"), ids: 0..<bulkWrites / 2)
        try bulkInsert(pool, namespace("products"), ids: 2 * firstID..<(2 * firstID + bulkWrites / 2))
        sleep(3)
        result.burstRSS = sampler.stop()
        return result
    }

    /// Whether `GET /readyz` answers 200.
    static func isReady(port: Int) -> Bool {
        guard let socket = TCPSocket(connectingTo: port, timeout: .seconds(1)),
              socket.write(Array("GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".utf8)),
              let status = socket.read(exactly: 12)
        else { return false }
        return status == Array("HTTP/1.1 200".utf8)
    }

    private func appliedEvents(_ redis: any RedisClient, _ key: String) throws -> Int {
        Int(try redis.command(["HGET", key, "events"]).text ?? "") ?? 0
    }

    /// A product document of about 300 bytes of JSON.
    private func product(_ id: Int) -> BSONDocument {
        [
            "_id": .int64(Int64(id)),
            "sku": .string("SKU-\(id)"),
            "name": .string("Widget \(id), stainless steel, 40 mm"),
            "price": .double(Double(id % 10_000) / 100),
            "tags": .array([.string("hardware"), .string("steel")]),
            "stock": .document(["eu": .int32(Int32(id % 97)), "us": .int32(Int32(id % 89))]),
        ]
    }

    /// Inserts the products `ids` with `insertMany`, 1,000 per call.
    private func bulkInsert(_ pool: MongoClientPool, _ ns: MongoNamespace, ids: Range<Int>) throws {
        for start in stride(from: ids.lowerBound, to: ids.upperBound, by: 1000) {
            try pool.insertMany(ns, (start..<min(start + 1000, ids.upperBound)).map(product))
        }
    }

    /// Inserts the products `ids` one by one at `rate` per second; returns when each insert was sent.
    private func pacedInserts(_ pool: MongoClientPool, _ ns: MongoNamespace, ids: Range<Int>) throws -> [Int: Double] {
        var sent: [Int: Double] = [:]
        let start = Measure.now()
        for (index, id) in ids.enumerated() {
            Measure.sleep(until: start + Double(index) / rate)
            sent[id] = Measure.now()
            try pool.insertOne(ns, product(id))
        }
        return sent
    }

    private func log(_ text: String) {
        FileHandle.standardError.write(Data("bench: \(text)\n".utf8))
    }
}

extension EndToEndBenchmark {
    /// The binary watching `collections` idle collections (`invalidate`, lease on) of nx-27017 — which answers an
    /// empty getMore at once, so each stream polls — measured after start: resident memory and CPU over 10 s.
    static func idleFootprint(collections: Int) throws -> (rss: ResidentMemorySampler.Peak, cpu: Double, ready: Double) {
        let redisServer = try RedisTestServer()
        let mongo = try MongoTestServer(.init(inMemory: true))
        defer {
            redisServer.cleanUp()
            mongo.cleanUp()
        }
        let pool = try MongoClientPool(uri: mongo.uri)
        let names = (0..<collections).map { "idle\($0)" }
        for name in names {
            try pool.insertOne(MongoNamespace(database: mongo.database, collection: name), ["_id": .string("warmup")])
        }
        let httpPort = try FreePort.next()
        let config = """
            mongodb: { uri: "\(mongo.uri)", database: \(mongo.database) }
            redis: { url: "redis://127.0.0.1:\(redisServer.port)/0" }
            http: { listen: "127.0.0.1:\(httpPort)" }
            collections:
            \(names.map { "  \($0): { strategy: invalidate }" }.joined(separator: "\n"))
            """
        let process = try CacheSyncProcess(config: config)
        let started = Measure.now()
        try process.start()
        defer { process.process.stop() }
        guard waitUntil(timeout: .seconds(60), { isReady(port: httpPort) }) else {
            throw BenchError("cachesync did not become ready; its log:\n\(process.log)")
        }
        let ready = Measure.now() - started
        guard let pid = process.process.pid else { throw BenchError("cachesync is not running") }
        sleep(3)
        var sampler = ResidentMemorySampler(pid: pid)
        let cpu0 = Measure.cpuSeconds(pid), t0 = Measure.now()
        sleep(10)
        let cpu = (Measure.cpuSeconds(pid) - cpu0) / (Measure.now() - t0)
        return (sampler.stop(), cpu, ready)
    }
}
