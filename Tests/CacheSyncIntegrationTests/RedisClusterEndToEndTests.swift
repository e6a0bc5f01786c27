import BSONModel
import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge
import RedisSlot
import Testing
import TestSupport

/// The binary against a 6-node Redis Cluster (`RedisClusterBed`), connecting as the least-privilege user whose rule
/// `cachesync check-config --acl` prints for a cluster config (granted on every node).
@Suite("Redis Cluster end to end", .serialized)
struct RedisClusterEndToEndTests {
    @Test("format: hash and a secondary key on the cluster: the strategy table (the hash refresh keeps the TTL inside the master's script) and verify")
    func hashFormatAndSecondaryKeys() throws {
        let f = try SidecarFixture(cluster: try RedisClusterBed())
        let sidecar = try f.startSidecar(config: f.config(collections: StrategyEndToEndTests.hashCollections(
            productsExtra: "    indexes: [ { key: \"product:name:{name}\", value: document } ]")))
        try StrategyEndToEndTests.checkStrategyTable(f, sidecar, hash: true)
        let copy = try f.cached(f.redisServer.keyPrefix + "product:name:table")
        #expect(copy == #"{"_id":2,"name":"table"}"#, "\(copy ?? "none")")
        #expect(try f.cached(f.redisServer.keyPrefix + "product:name:desk") == nil, "the replaced name's key is gone")
        sidecar.process.stop()
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "verify on the cluster:\n\(verify.output)")
    }

    @Test("the strategy table, the adaptive TTL, restart-resume after kill -9 and verify, on a 6-node cluster")
    func strategiesResumeAndVerify() throws {
        let f = try SidecarFixture(cluster: try RedisClusterBed())
        var sidecar = try f.startSidecar()
        try StrategyEndToEndTests.checkStrategyTable(f, sidecar)

        // The access counter lives beside its key, in the key's slot ({key}:access_count).
        let products = f.ns("products")
        let counted = CacheKey(text: f.key("products", "hot"), colocatesDerivedKeys: true)
        _ = try f.redis.command(["SET", counted.accessCountKey, "150"])
        try f.pool.insertOne(products, ["_id": .string("hot")])
        try f.eventually("hot cached", sidecar) { try f.cached(counted.text) != nil }
        #expect(try f.pttl(counted.text) > 1_795_000, "150 accesses: the 1800 s tier")

        // Keys in every master's slots.
        let ids = (100..<160).map { Int32($0) }
        try f.pool.insertMany(products, ids.map { ["_id": .int32($0), "v": .int32(1)] })
        try f.eventually("60 cached", sidecar) { try ids.allSatisfy { try f.cached(f.key("products", String($0))) != nil } }
        let cluster = try #require(f.redis as? RedisCluster)
        for connection in try cluster.masterConnections() {
            #expect(try connection.command(["DBSIZE"]).integer ?? 0 > 10, "every master holds some keys")
        }

        // kill -9, writes while it is down, restart: resumed from the checkpoint, nothing missed.
        sidecar.process.kill()
        for id in ids.prefix(20) {
            try f.pool.updateOne(products, filter: ["_id": .int32(id)], update: ["$set": .document(["v": .int32(2)])])
        }
        for id in ids.suffix(10) { try f.pool.deleteOne(products, filter: ["_id": .int32(id)]) }
        sidecar = try f.startSidecar()
        #expect(sidecar.log.contains("opened from the stored checkpoint"))
        try f.eventually("caught up", sidecar) {
            try ids.prefix(20).allSatisfy { try f.cached(f.key("products", String($0))) == #"{"_id":\#($0),"v":2}"# }
                && ids.suffix(10).allSatisfy { try f.cached(f.key("products", String($0))) == nil }
        }
        sidecar.process.stop()
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "verify on the cluster:\n\(verify.output)")
        _ = try f.redis.command(["SET", f.key("products", "105"), #"{"_id":105,"v":0}"#])
        let dirty = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(dirty.status == 1 && dirty.output.contains("stale \(f.database).products \(f.key("products", "105"))"),
                "verify must find a stale entry on any master:\n\(dirty.output)")
    }

    @Test("a paused leader's batch spanning all three masters: after SIGCONT none of its writes land")
    func fencedInEverySlot() throws {
        let f = try SidecarFixture(cluster: try RedisClusterBed())
        // 30 ids: their keys fall on all three masters.
        let ids = (0..<30).map { Int32($0) }
        let cluster = try #require(f.redis as? RedisCluster)
        let owners = try Set(ids.map { id in
            try cluster.connection(forSlot: RedisSlot.of(f.key("products", String(id)))).options.port
        })
        #expect(owners.count == 3)
        try LeadershipTests.fencedExLeaderWritesNothing(f, ids: ids)
    }

    @Test("read-through on a cluster: a miss loads and caches, then hits; a missing id is 404 and remembered")
    func readThrough() throws {
        let bed = try RedisClusterBed()
        let harness = try HTTPHarness(collections: "  items:\n    strategy: invalidate\n    idType: string",
                                      collectionCount: 1, cluster: bed)
        defer { harness.stop() }
        let pool = try harness.mongoPool()
        let ids = (0..<30).map { "i\($0)" }
        try pool.insertMany(harness.namespace("items"), ids.map { ["_id": .string($0), "n": .int32(1)] })
        for id in ids {
            let miss = try harness.get("/v1/cache/items/\(id)")
            #expect(miss.status == 200 && miss.headers["x-cache"] == "MISS", "\(id): \(miss.status) \(miss.body)")
            let hit = try harness.get("/v1/cache/items/\(id)")
            #expect(hit.status == 200 && hit.headers["x-cache"] == "HIT" && hit.body == miss.body)
        }
        let client = bed.client()
        // The access counters sit in their keys' slots, on every master.
        #expect(try client.command(["GET", "{items:i7}:access_count"]).text == "2")
        let missing = try harness.get("/v1/cache/items/nope")
        #expect(missing.status == 404)
        #expect(try client.command(["GET", "{items:nope}:lease"]).text == "not-found")
        #expect(try harness.get("/v1/cache/items/nope").status == 404)
    }

    @Test("the read-through race on a cluster: with the lease no stale entry, without it (the control) stale entries")
    func readThroughRace() throws {
        let race = HTTPAPITests.ReadThroughRaceTests()
        let fresh = try race.race(leaseDisabled: false, cluster: try RedisClusterBed())
        #expect(fresh.writes > 50 && fresh.misses > 50)
        #expect(fresh.stale.isEmpty, "stale ids: \(fresh.stale)")
        let control = try race.race(leaseDisabled: true, cluster: try RedisClusterBed())
        #expect(!control.stale.isEmpty, "without the lease the race must leave stale entries (\(control.reads) reads)")
    }

    @Test("a config without redis.cluster pointed at a cluster node: /readyz is 503 and says to set it")
    func clusterWithoutClusterConfig() throws {
        let bed = try RedisClusterBed()
        defer { bed.cleanUp() }
        let f = try SidecarFixture()
        let config = f.config(redisSection: "redis:\n  url: \"\(bed.seedURL)\"")
        let sidecar = try CacheSyncProcess(config: config, environment: ["CACHESYNC_INSTANCE_ID": "misconfigured"])
        try sidecar.start()
        var reply: HTTPReply?
        try f.eventually("readyz names the cause", sidecar) {
            reply = HTTPHarness.get(port: f.httpPort, path: "/readyz")
            return reply?.body.contains("is a Redis Cluster node, but redis.cluster is not set") == true
        }
        #expect(reply?.status == 503)
    }

    @Test("a cluster config pointed at a server without cluster mode: /readyz is 503 and says so")
    func clusterConfigOnPlainServer() throws {
        let f = try SidecarFixture()
        let config = f.config(redisSection: "redis:\n  url: \"redis://127.0.0.1:\(f.redisServer.port)/0\"\n  cluster: {}")
        let sidecar = try CacheSyncProcess(config: config, environment: ["CACHESYNC_INSTANCE_ID": "misconfigured"])
        try sidecar.start()
        var reply: HTTPReply?
        try f.eventually("readyz names the cause", sidecar) {
            reply = HTTPHarness.get(port: f.httpPort, path: "/readyz")
            return reply?.body.contains("is not a Redis Cluster node (cluster support disabled)") == true
        }
        #expect(reply?.status == 503)
    }
}

/// Chaos on a cluster: steady inserts, updates and deletes on three collections while 1,000 slots move between
/// masters and a master is SIGKILLed (its replica takes over). `CACHESYNC_CLUSTER_CHAOS_RUNS` runs in a row (1 in
/// the test command; `scripts/cluster-chaos.sh` runs 5).
@Suite("Redis Cluster chaos", .serialized)
struct RedisClusterChaosTests {
    static var runs: Int {
        ProcessInfo.processInfo.environment["CACHESYNC_CLUSTER_CHAOS_RUNS"].flatMap(Int.init) ?? 1
    }

    @Test("after moving 1,000 slots and killing a master under load, every key matches MongoDB and verify exits 0")
    func chaos() throws {
        for run in 1...Self.runs { try Self.chaosRun(run) }
    }

    /// The part of a sidecar's log worth showing: from a crash report's first line when it crashed, else the end.
    static func logExcerpt(_ log: String) -> String {
        guard let crash = log.range(of: "crashed") else { return String(log.suffix(3000)) }
        let start = log[..<crash.lowerBound].lastIndex(of: "\n") ?? log.startIndex
        return String(log[start...].prefix(6000))
    }

    static func chaosRun(_ run: Int) throws {
        let bed = try RedisClusterBed()
        let f = try SidecarFixture(cluster: bed)
        let names = ["products", "orders", "carts"]
        // products also keeps a secondary key per document (in another slot than the document's).
        let collections = names.map { "  \($0):\n    strategy: update" }.joined(separator: "\n")
            .replacingOccurrences(of: "products:\n    strategy: update",
                                  with: "products:\n    strategy: update\n    indexes: [ { key: \"product:v:{v}:{id}\" } ]")
        let config = f.config(collections: collections, lease: "{ enabled: true, ttl: 2 }")
        let sidecar = try f.startSidecar(config: config, collections: 3)
        let ids = 150
        let stop = ManagedFlag(), writes = ManagedCounter()
        let pool = f.pool
        let writer = Thread {
            var present = names.map { _ in Set<Int32>() }
            var version: Int32 = 0
            while !stop.value {
                let c = Int.random(in: 0..<names.count), id = Int32.random(in: 0..<Int32(ids))
                let ns = f.ns(names[c])
                version += 1
                do {
                    if !present[c].contains(id) {
                        try pool.insertOne(ns, ["_id": .int32(id), "v": .int32(version)])
                        present[c].insert(id)
                    } else if Int.random(in: 0..<4) == 0 {
                        _ = try pool.deleteOne(ns, filter: ["_id": .int32(id)])
                        present[c].remove(id)
                    } else {
                        _ = try pool.updateOne(ns, filter: ["_id": .int32(id)], update: ["$set": .document(["v": .int32(version)])])
                    }
                    writes.add(1)
                } catch {
                    usleep(10_000)
                }
            }
        }
        writer.start()
        Thread.sleep(forTimeInterval: 2)
        let masters = try bed.masters()
        try bed.reshard(from: masters[0].id, to: masters[1].id, slots: 1000)
        Thread.sleep(forTimeInterval: 1)
        try masters[2].server.kill()
        try bed.waitUntilSettled(seconds: 30)
        #expect(try bed.masters().count == 3, "the killed master's replica took over")
        Thread.sleep(forTimeInterval: 2)
        stop.value = true
        while writer.isExecuting { usleep(50_000) }

        var wrong: [String] = []
        let settled = waitUntil(timeout: .seconds(60)) {
            wrong = names.flatMap { ChaosTests.mismatches(f: f, pool: pool, ns: f.ns($0), ids: ids) }
                + ChaosTests.secondaryMismatches(f: f, pool: pool, ns: f.ns("products"))
            return wrong.isEmpty
        }
        #expect(settled, "run \(run): stale or missing keys: \(wrong.prefix(10))\n\(Self.logExcerpt(sidecar.log))")
        let metrics = HTTPHarness.get(port: f.httpPort, path: "/metrics")?.body ?? ""
        let moved = metrics.split(separator: "\n").first { $0.hasPrefix("cachesync_redis_redirects_total{kind=\"moved\"}") }
        #expect(moved.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0 > 0,
                "the resharding must have redirected the sidecar: \(moved ?? "no moved counter")")
        let stats = HTTPHarness.get(port: f.httpPort, path: "/v1/stats")?.json?["redisCluster"] as? [[String: Any]]
        #expect(stats?.count == 3, "/v1/stats lists the three masters")
        sidecar.process.stop()
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "run \(run): verify:\n\(verify.output)")
        print("cluster chaos run \(run): \(writes.value) writes, 1000 slots moved, a master killed; "
              + "consistent: \(settled); \(moved ?? "")")
    }
}
