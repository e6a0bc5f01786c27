import Foundation
import RedisBridge
import RedisSlot
import Testing
import TestSupport

/// `RedisCluster` against a real 6-node cluster: routing, pipelines across masters, redirections while slots move,
/// and a master's failover.
@Suite(.serialized) struct RedisClusterTests {
    @Test func routesEveryKeyToItsSlotsMaster() async throws {
        try await withRedisCluster { bed in
            let cluster = bed.client()
            let topology = try cluster.topology()
            #expect(topology.count == 3)
            #expect(topology.reduce(0) { $0 + $1.slots.reduce(0) { $0 + $1.count } } == RedisSlot.count)
            let keys = (0..<300).map { "k:\($0)" }
            let replies = try cluster.pipeline(keys.map { ["SET", $0, "v-\($0)"] })
            #expect(replies.allSatisfy { $0 == .status("OK") })
            for key in keys.prefix(20) { #expect(try cluster.command(["GET", key]).text == "v-\(key)") }
            // Each master holds only keys of its own slots.
            var total = 0
            for connection in try cluster.masterConnections() {
                total += Int(try connection.command(["DBSIZE"]).integer ?? 0)
            }
            #expect(total == keys.count)
            var scanned: [String] = []
            try cluster.scan(match: "k:*") { scanned += $0; return true }
            #expect(Set(scanned) == Set(keys))
            #expect(cluster.redirects.isEmpty)
        }
    }

    @Test func followsMovedAfterAResharding() async throws {
        try await withRedisCluster { bed in
            let cluster = bed.client()
            let keys = (0..<500).map { "r:\($0)" }
            _ = try cluster.pipeline(keys.map { ["SET", $0, "1"] })
            let masters = try bed.masters()
            try bed.reshard(from: masters[0].id, to: masters[1].id, slots: 2000)
            // The client's map is old: the moved slots answer MOVED, which it follows.
            let replies = try cluster.pipeline(keys.map { ["INCR", $0] })
            #expect(replies.allSatisfy { $0 == .integer(2) })
            #expect((cluster.redirects[.moved] ?? 0) > 0)
            #expect(try keys.allSatisfy { try cluster.command(["GET", $0]).text == "2" })
        }
    }

    @Test func followsAskWhileASlotMigrates() async throws {
        try await withRedisCluster { bed in
            let cluster = bed.client()
            let masters = try bed.masters()
            let source = masters[0], target = masters[1]
            // A slot of the source: migrating, with one of two keys already moved.
            let slot = try cluster.topology().first { $0.master.port == source.server.port }!.slots[0].lowerBound
            let tag = RedisSlot.tag(forSlot: slot)
            let moved = "{\(tag)}moved", stays = "{\(tag)}stays"
            _ = try cluster.pipeline([["SET", moved, "a"], ["SET", stays, "b"]])
            _ = try target.server.connect().command(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", source.id])
            _ = try source.server.connect().command(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", target.id])
            _ = try source.server.connect().command(["MIGRATE", "127.0.0.1", String(target.server.port), moved, "0", "5000"])
            #expect(try cluster.command(["GET", moved]).text == "a")
            #expect(try cluster.command(["GET", stays]).text == "b")
            #expect((cluster.redirects[.ask] ?? 0) == 1)
            // A new key of the slot goes where ASK points too.
            #expect(try cluster.command(["SET", "{\(tag)}new", "c"]) == .status("OK"))
        }
    }

    @Test func findsTheNewMasterAfterAFailover() async throws {
        try await withRedisCluster { bed in
            let cluster = bed.client()
            let keys = (0..<200).map { "f:\($0)" }
            _ = try cluster.pipeline(keys.map { ["SET", $0, "1"] })
            try bed.masters()[0].server.kill()
            // Until a replica takes over, calls fail (and are retried by the caller, as here).
            let end = Date().addingTimeInterval(30)
            var done = false
            while !done, Date() < end {
                if let replies = try? cluster.pipeline(keys.map { ["INCR", $0] }) {
                    #expect(replies.allSatisfy { $0.integer != nil })
                    done = true
                } else {
                    usleep(200_000)
                }
            }
            #expect(done)
            #expect(try cluster.masterConnections().count == 3)
        }
    }

    @Test func namesAServerThatIsNotAClusterNode() async throws {
        try withRedisServer { server in
            let cluster = RedisCluster(options: server.connectionOptions(), seeds: [.init(host: "127.0.0.1", port: server.port)])
            #expect {
                try cluster.command(["GET", "x"])
            } throws: { error in
                "\(error)".contains("is not a Redis Cluster node (cluster support disabled)")
            }
            // And the other way round: a single-server connection to a cluster node says what MOVED means.
        }
    }
}
