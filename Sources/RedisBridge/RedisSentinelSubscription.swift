import Foundation
import Synchronization

/// How many times, in this process, the sentinels announced a new master for one `RedisSentinelOptions`. A
/// connection behind Sentinel notes the count when it connects and, when it has moved on, drops its socket before
/// the next command and asks the sentinels again: so a switch is followed even by a connection whose old master
/// still answers (partitioned away, or demoted but still serving reads).
final class RedisMasterSwitches: Sendable {
    private static let all = Mutex<[RedisSentinelOptions: RedisMasterSwitches]>([:])
    private let count = Atomic<Int>(0)

    /// The counter every connection with these sentinel options shares.
    static func of(_ sentinel: RedisSentinelOptions) -> RedisMasterSwitches {
        all.withLock { table in
            if let existing = table[sentinel] { return existing }
            let fresh = RedisMasterSwitches()
            table[sentinel] = fresh
            return fresh
        }
    }

    /// The number of switches so far.
    var current: Int { count.load(ordering: .acquiring) }

    /// Records a switch.
    func record() { count.add(1, ordering: .releasing) }
}

/// A thread subscribed to one sentinel's `+switch-master` channel (the next sentinel when that one fails); each
/// announcement for the master makes every connection with the same options reconnect to the new master before its
/// next command. At every (re)subscription it also asks that sentinel for the master, in the same round trip as
/// `SUBSCRIBE`, so a switch announced while it was not subscribed is not missed.
public final class RedisSentinelSubscription: @unchecked Sendable {
    private let options: RedisConnectionOptions
    private let sentinel: RedisSentinelOptions
    private let switches: RedisMasterSwitches
    private let onSwitch: @Sendable (String) -> Void
    private let stopped = Atomic<Bool>(false)

    /// A subscription for the connections of `options` (which must have `sentinel`); `onSwitch` gets a sentence
    /// naming the old and the new master, for the log. Call `start()`.
    public init(options: RedisConnectionOptions, onSwitch: @escaping @Sendable (String) -> Void) {
        precondition(options.sentinel != nil, "a sentinel subscription needs sentinel options")
        self.options = options
        sentinel = options.sentinel!
        switches = RedisMasterSwitches.of(options.sentinel!)
        self.onSwitch = onSwitch
    }

    /// Starts the subscribing thread.
    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "sentinel subscription"
        thread.start()
    }

    /// Ends the thread within one read timeout (10 s); nothing waits for it.
    public func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    private func run() {
        var lastMaster: String?
        var node = 0
        while !stopped.load(ordering: .relaxed) {
            do {
                try listen(to: sentinel.nodes[node % sentinel.nodes.count], lastMaster: &lastMaster)
            } catch {
                // Down or unreachable: the next sentinel after a pause. Connections still find the master by
                // asking the sentinels at every connect, and /readyz says so when none answers.
                node += 1
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }

    /// Subscribes on `node` and handles its announcements until a read times out (it returns, and the caller
    /// subscribes again) or fails (it throws).
    private func listen(to node: RedisSentinelOptions.Node, lastMaster: inout String?) throws(RedisError) {
        let connection = try RedisConnection(options: options.sentinelNode(node, of: sentinel, commandTimeout: .seconds(10)))
        defer { connection.close() }
        let replies = try connection.pipeline([["SENTINEL", "get-master-addr-by-name", sentinel.masterName],
                                               ["SUBSCRIBE", "+switch-master"]])
        try connection.throwFirstError(in: replies)
        if let address = RedisSentinelOptions.masterAddress(in: replies[0]) {
            let master = "\(address.host):\(address.port)"
            if let lastMaster, lastMaster != master {
                switches.record()
                onSwitch("the sentinels name \(master) as master \(sentinel.masterName) (was \(lastMaster))")
            }
            lastMaster = master
        }
        while !stopped.load(ordering: .relaxed) {
            let message: RedisReply
            do {
                message = try connection.nextPushedMessage()
            } catch where error.kind == .timeout {
                return
            }
            // ["message", "+switch-master", "<name> <old host> <old port> <new host> <new port>"]
            guard let parts = message.array, parts.count == 3, parts[0].text == "message",
                  let words = parts[2].text?.split(separator: " "), words.count == 5,
                  words[0] == sentinel.masterName
            else { continue }
            let master = "\(words[3]):\(words[4])"
            switches.record()
            onSwitch("Sentinel switched master \(sentinel.masterName) from \(words[1]):\(words[2]) to \(master)")
            lastMaster = master
        }
    }
}
