import BSONModel
import Foundation
import MongoBridge
import RedisBridge
import Testing
import TestSupport

/// The real binary behind Redis Sentinel, plaintext and TLS only (the sentinels too): the master SIGKILLed under a
/// steady write load.
@Suite("Redis Sentinel end to end", .serialized, .enabled(if: RedisTestServer.startsOwnServer, "needs its own servers"))
struct RedisSentinelEndToEndTests {
    @Test("under steady writes the master is killed: cachesync follows the promoted replica within 15 s, nothing is lost, verify is clean",
          arguments: [false, true])
    func followsFailover(tls: Bool) throws {
        let bed = try RedisSentinelBed(tls: tls)
        let f = try SidecarFixture()
        let caFile = try TestCertificates.shared().caFile
        let section = """
            redis:
              url: "\(tls ? "rediss" : "redis")://mymaster/0"
              keyPrefix: "\(f.redisServer.keyPrefix)"
              sentinel:
                masterName: \(bed.masterName)
                nodes: [\(bed.sentinelAddresses.map { "\"\($0)\"" }.joined(separator: ", "))]
            \(tls ? "  tls: { caFile: \"\(caFile)\" }" : "")
            """
        let config = f.config(collections: "  products:\n    strategy: update", redisSection: section)
        let sidecar = try f.startSidecar(config: config, collections: 1)
        #expect(sidecar.log.contains("master mymaster via 3 sentinels"))
        let products = f.ns("products")
        let stop = ManagedFlag()
        let written = ManagedCounter()
        let writer = Thread {
            var i = 0
            while !stop.value {
                if (try? f.pool.insertOne(products, ["_id": .int32(Int32(i)), "v": .int32(Int32(i))])) != nil {
                    written.add(1)
                    i += 1
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        writer.start()
        Thread.sleep(forTimeInterval: 1.5)
        try bed.killMaster()
        let killed = Date()
        let afterKill = written.value + 5
        let newMaster = try bed.replica.connect()
        let key = { (i: Int) in f.redisServer.keyPrefix + "products:\(i)" }
        let followed = waitUntil(timeout: .seconds(20)) {
            (try? newMaster.command(["EXISTS", key(afterKill)]).integer) == 1
        }
        let seconds = Date().timeIntervalSince(killed)
        Thread.sleep(forTimeInterval: 1)
        stop.value = true
        while writer.isExecuting { usleep(10_000) }
        #expect(followed, "no write after the kill reached the promoted replica\n\(sidecar.log.suffix(3000))\n\(bed.log.suffix(3000))")
        #expect(seconds < 15, "followed after \(seconds) s")
        let total = written.value
        try f.eventually("every write cached on the new master", sidecar) {
            try (0..<total).allSatisfy { try newMaster.command(["EXISTS", key($0)]).integer == 1 }
        }
        let verify = try CacheSyncProcess.runCommand(["verify", "--config", sidecar.configURL.path])
        #expect(verify.status == 0, "verify after the failover:\n\(verify.output)")
        #expect(sidecar.process.isRunning, "cachesync followed without a restart")
        withExtendedLifetime(sidecar) {}
    }
}
