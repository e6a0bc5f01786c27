import Foundation
import RedisBridge
import Synchronization
import TestSupport
import Testing

/// `RedisConnection` behind Redis Sentinel: one master, one replica and three sentinels on loopback.
@Suite("Redis behind Sentinel", .serialized, .enabled(if: RedisTestServer.startsOwnServer, "needs its own servers"))
struct RedisSentinelTests {
    @Test("commands go to the master the sentinels name; after SIGKILL of the master the connection follows the promoted replica")
    func followsFailover() throws {
        let bed = try RedisSentinelBed()
        let options = bed.masterOptions()
        let connection = try RedisConnection(options: options)
        #expect(try connection.command(["ROLE"]).array?.first?.text == "master")
        #expect(try connection.command(["SET", "k", "before"]) == .status("OK"))
        _ = try connection.command(["WAIT", "1", "2000"])
        try bed.killMaster()
        let killed = Date()
        var followed = false
        while Date().timeIntervalSince(killed) < 20 {
            if (try? connection.command(["SET", "k2", "after"])) == .status("OK") {
                followed = true
                break
            }
            usleep(100_000)
        }
        #expect(followed, "no write succeeded within 20 s of the kill\n\(bed.log)")
        #expect(Date().timeIntervalSince(killed) < 15, "took \(Date().timeIntervalSince(killed)) s")
        #expect(try bed.currentMasterPort() == bed.replica.port)
        #expect(try connection.command(["GET", "k"]).text == "before", "the promoted replica has the earlier write")
        #expect(try bed.replica.connect().command(["GET", "k2"]).text == "after", "the write went to the new master")
    }

    @Test("a +switch-master announcement moves a connection whose old master still answers to the new master")
    func switchMasterSubscription() throws {
        let bed = try RedisSentinelBed()
        let options = bed.masterOptions()
        let announcements = Mutex<[String]>([])
        let subscription = RedisSentinelSubscription(options: options) { text in announcements.withLock { $0.append(text) } }
        subscription.start()
        defer { subscription.stop() }
        let connection = try RedisConnection(options: options)
        func port() throws -> Int? {
            let info = try connection.command(["INFO", "server"]).text ?? ""
            return info.split(separator: "\r\n").first { $0.hasPrefix("tcp_port:") }.flatMap { Int($0.dropFirst(9)) }
        }
        #expect(try port() == bed.master.port)
        Thread.sleep(forTimeInterval: 1) // the subscription is in place
        // A failover with the old master alive: it keeps answering reads (as a replica), so without the announcement
        // nothing would move this connection.
        _ = try RedisConnection(options: bed.sentinelOptions(port: bed.sentinelPorts[1]))
            .command(["SENTINEL", "FAILOVER", bed.masterName])
        let announced = waitUntil(timeout: .seconds(20)) { !announcements.withLock { $0.isEmpty } }
        #expect(announced, "no +switch-master announcement\n\(bed.log)")
        #expect(announcements.withLock { $0.first?.contains("to 127.0.0.1:\(bed.replica.port)") } == true,
                "\(announcements.withLock { $0 })")
        #expect(try port() == bed.replica.port, "the next command went to the new master")
        #expect(try connection.command(["ROLE"]).array?.first?.text == "master")
    }

    @Test("a master name no sentinel knows is an error naming each sentinel's answer")
    func unknownMaster() throws {
        let bed = try RedisSentinelBed()
        let nodes = bed.sentinelPorts.map { RedisSentinelOptions.Node(host: "127.0.0.1", port: $0) }
            + [RedisSentinelOptions.Node(host: "127.0.0.1", port: try FreePort.next())]
        let options = RedisConnectionOptions(connectTimeout: .seconds(1),
                                             sentinel: RedisSentinelOptions(masterName: "nosuch", nodes: nodes))
        let error = #expect(throws: RedisError.self) { try RedisConnection(options: options) }
        #expect(error?.isRetryable == true)
        #expect(error?.message.contains("no sentinel names the master") == true)
        #expect(error?.message.contains("does not know nosuch") == true)
        #expect(error?.message.contains("\(nodes.last!)") == true, "\(String(describing: error))")
    }

    @Test("a write to a replica (READONLY) drops the connection, so the next call reconnects; in a sent transaction too")
    func readOnlyDrops() throws {
        let bed = try RedisSentinelBed()
        let connection = try bed.replica.connect()
        let error = #expect(throws: RedisError.self) { try connection.command(["SET", "k", "v"]) }
        #expect(error?.kind == .notMaster)
        #expect(!connection.isConnected)

        // Refused at queueing, the transaction's first error is READONLY, not the EXECABORT that follows it.
        var batch = RedisCommandBatch()
        batch.append("SET", "k", "v")
        #expect(try connection.sendTransaction(batch))
        let sent = #expect(throws: RedisError.self) { try connection.awaitTransaction() }
        #expect(sent?.kind == .notMaster, "\(String(describing: sent))")
        #expect(!connection.isConnected)
    }
}
