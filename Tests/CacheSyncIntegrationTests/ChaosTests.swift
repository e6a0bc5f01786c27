import BSONModel
import CacheSyncCore
import Foundation
import Glibc
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// Three sidecars with one config, random writes, instances killed with SIGKILL and restarted, redis-server and
/// the MongoDB server restarted once each; afterwards nothing in the cache may be stale. The short variant runs in
/// the test command; `scripts/chaos.sh` runs the long one (`CACHESYNC_CHAOS_SECONDS=60`) and prints the figures.
@Suite("Chaos: replicas, kills and server restarts", .serialized,
       .enabled(if: RedisTestServer.startsOwnServer && MongoTestServer.startsOwnServer,
                "kills and restarts redis-server and the MongoDB server: needs its own of each (REDIS_URL and MONGODB_URI unset)"))
struct ChaosTests {
    /// How long the writes and kills go on: `CACHESYNC_CHAOS_SECONDS`, 20 s unless set.
    static var seconds: Double {
        ProcessInfo.processInfo.environment["CACHESYNC_CHAOS_SECONDS"].flatMap(Double.init) ?? 20
    }

    @Test("after kills and restarts, verify finds nothing stale, no update is lost, and there is never two leaders")
    func chaos() throws {
        let f = try SidecarFixture(redis: .init(persistence: true))
        let instances = 3
        let ports = try (0..<instances).map { _ in try FreePort.next() }
        let collections = """
              products:
                strategy: update
                indexes: [ { key: "product:v:{v}:{id}" } ]
              users:
                strategy: invalidate
            """
        func config(_ port: Int) -> String {
            f.config(collections: collections, lease: "{ enabled: true, ttl: 2 }", httpPort: port)
        }
        func launch(_ i: Int) throws -> CacheSyncProcess {
            let p = try CacheSyncProcess(config: config(ports[i]), environment: ["CACHESYNC_INSTANCE_ID": "replica-\(i)"])
            try p.start()
            return p
        }
        var sidecars = try (0..<instances).map(launch)
        let products = f.ns("products"), users = f.ns("users")
        let ids = 60
        // Changes made before the first leader opens its stream are not watched: wait for both checkpoints.
        try f.eventually("streams open", sidecars[0]) {
            try ["products", "users"].allSatisfy {
                try f.redis.command(["EXISTS", f.checkpointPrefix + "resume:\(f.database).\($0)"]).integer == 1
            }
        }
        for i in 0..<ids { try f.pool.insertOne(products, ["_id": .int32(Int32(i)), "v": .int32(0)]) }

        let stop = ManagedFlag()
        let leaderSamples = ManagedCounter(), doubleLeaders = ManagedCounter()
        let consistency = ConsistencySampler()
        let sampler = Thread {
            let statsPaths = ports.map { port in (port, "/v1/stats") }
            while !stop.value {
                var leaders: [String: Int] = [:]
                for (port, path) in statsPaths {
                    guard let reply = HTTPHarness.get(port: port, path: path, timeout: .milliseconds(500)),
                          let json = reply.json, let colls = json["collections"] as? [String: [String: Any]] else { continue }
                    for (ns, entry) in colls where entry["leader"] as? Bool == true { leaders[ns, default: 0] += 1 }
                }
                leaderSamples.add(1)
                if leaders.values.contains(where: { $0 > 1 }) { doubleLeaders.add(1) }
                usleep(100_000)
            }
        }
        sampler.start()
        let checker = Thread {
            guard let pool = try? MongoClientPool(uri: f.mongoServer.uri),
                  let redis = try? f.redisServer.connect() else { return }
            while !stop.value {
                consistency.sample(pool: pool, redis: redis, ns: products, key: { f.key("products", String($0)) }, ids: ids)
                usleep(50_000)
            }
        }
        checker.start()

        var kills = 0
        var redisRestarted = false, mongoRestarted = false
        let start = Date()
        var nextKill = start.addingTimeInterval(2)
        var writes = 0
        while Date().timeIntervalSince(start) < Self.seconds {
            let elapsed = Date().timeIntervalSince(start)
            let id = Int32.random(in: 0..<Int32(ids))
            try? f.retrying {
                switch Int.random(in: 0..<10) {
                case 0..<5: try f.pool.updateOne(products, filter: ["_id": .int32(id)], update: ["$inc": .document(["v": .int32(1)])])
                case 5..<7: try f.pool.replaceOne(products, filter: ["_id": .int32(id)], replacement: ["_id": .int32(id), "v": .int32(Int32(writes)), "r": .bool(true)], upsert: true)
                case 7: try f.pool.deleteOne(products, filter: ["_id": .int32(id)])
                case 8: try f.pool.replaceOne(products, filter: ["_id": .int32(id)], replacement: ["_id": .int32(id), "v": .int32(0)], upsert: true)
                default: try f.pool.updateOne(users, filter: ["_id": .int32(id)], update: ["$set": .document(["w": .int32(Int32(writes))])], upsert: true)
                }
            }
            writes += 1
            if Date() >= nextKill {
                let victim = Int.random(in: 0..<instances)
                sidecars[victim].process.kill()
                sidecars[victim] = try launch(victim)
                kills += 1
                nextKill = Date().addingTimeInterval(Self.seconds / 8)
            }
            if !redisRestarted, elapsed > Self.seconds * 0.35 {
                try f.redisServer.kill()
                usleep(300_000)
                try f.redisServer.start()
                redisRestarted = true
            }
            if !mongoRestarted, elapsed > Self.seconds * 0.65 {
                try f.mongoServer.stop()
                try f.mongoServer.start()
                mongoRestarted = true
            }
            usleep(10_000)
        }
        // Quiescence: wait until every product in MongoDB is cached with its current value.
        let pool = try MongoClientPool(uri: f.mongoServer.uri)
        var mismatches: [String] = []
        let settled = waitUntil(timeout: .seconds(60)) {
            mismatches = Self.mismatches(f: f, pool: pool, ns: products, ids: ids)
                + Self.secondaryMismatches(f: f, pool: pool, ns: products)
            return mismatches.isEmpty
        }
        stop.value = true
        while sampler.isExecuting || checker.isExecuting { usleep(50_000) }

        #expect(kills >= 5, "only \(kills) kills")
        #expect(redisRestarted && mongoRestarted)
        #expect(settled, "lost or stale updates after quiescence: \(mismatches.prefix(10))\n\(sidecars[0].log.suffix(3000))")
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecars[0].configURL.path])
        #expect(verify.status == 0, "verify found stale entries:\n\(verify.output)")
        #expect(doubleLeaders.value == 0, "\(doubleLeaders.value) of \(leaderSamples.value) samples saw two leaders of one collection")
        #expect(leaderSamples.value > 20)
        // The floors of the consistency figure. Healthy 60 s runs measured 100% consistent within 1 s and 96.5–99.5%
        // at once (BENCHMARKS.md); the 20 s run samples about 270 keys, so one stale sample moves it by 0.4 points.
        // A run whose writes reach Redis late or not at all (a lost leader, a stuck stream, a fence that refuses a
        // healthy leader) falls far below both. The sampler takes about 14 samples a second; fewer than 4 a second
        // means it was mostly unable to read, and the percentages would not describe the run.
        let figures = consistency.figures
        #expect(figures.samples >= Int(Self.seconds * 4), "too few samples for a consistency figure: \(consistency.summary)")
        #expect(figures.withinASecond >= 95, "\(consistency.summary)")
        #expect(figures.atOnce >= 90, "\(consistency.summary)")
        print("chaos: \(Int(Self.seconds)) s, \(writes) writes, \(kills) kills, redis and MongoDB restarted once; "
              + "\(leaderSamples.value) leader samples, \(doubleLeaders.value) with two leaders; \(consistency.summary)")
        withExtendedLifetime(sidecars) {}
    }

    /// The secondary keys `product:v:{v}:{id}` that are missing, or present without a document that gives them.
    static func secondaryMismatches(f: SidecarFixture, pool: MongoClientPool, ns: MongoNamespace) -> [String] {
        guard let docs = try? pool.find(ns) else { return ["(MongoDB unreachable)"] }
        let prefix = f.redisServer.keyPrefix + "product:v:"
        var expected = Set<String>()
        for doc in docs {
            if let id = doc["_id"], let v = doc["v"] { expected.insert(prefix + DocumentID.keyText(v) + ":" + DocumentID.keyText(id)) }
        }
        var found = Set<String>()
        do {
            try f.redis.scan(match: CacheKey.escapeGlob(prefix) + "*") { keys in
                found.formUnion(keys)
                return true
            }
        } catch {
            return ["(Redis unreachable)"]
        }
        return expected.subtracting(found).map { "secondary key missing: \($0)" }
            + found.subtracting(expected).map { "secondary key left behind: \($0)" }
    }

    /// Ids `0..<ids` of `ns` (an `update` collection) whose cached value is not MongoDB's current document (missing
    /// when it exists, or present when gone).
    static func mismatches(f: SidecarFixture, pool: MongoClientPool, ns: MongoNamespace, ids: Int) -> [String] {
        guard let docs = try? pool.find(ns) else { return ["(MongoDB unreachable)"] }
        var byID: [String: String] = [:]
        for doc in docs { if let id = doc["_id"] { byID[DocumentID.keyText(id)] = ExtendedJSON.relaxed(doc) } }
        var wrong: [String] = []
        for i in 0..<ids {
            let cached = try? f.cached(f.key(ns.collection, String(i)))
            if cached != byID[String(i)] { wrong.append("\(i): cache \(cached ?? "nil") ≠ db \(byID[String(i)] ?? "nil")") }
        }
        return wrong
    }
}
