import Foundation
import Glibc
import RedisSlot

/// A Redis Cluster seen through one blocking `RedisConnection` per master: each command goes to the master of its
/// key's slot, found with `CLUSTER SLOTS` from the seeds or any known node.
///
/// `MOVED` updates the slot's owner (and the whole map is asked again before the next command), `ASK` sends the one
/// command to the importing node after `ASKING`, `TRYAGAIN` and `CLUSTERDOWN` are retried with a growing pause, up to
/// `maxAttempts` sends in all. A connection that fails marks the map stale, so a failover's new master is found at
/// the next call; the failed call throws (the caller retries, as with one server). Thread-safe: the map under a lock,
/// each connection serialising its own calls.
public final class RedisCluster: RedisClient, @unchecked Sendable {
    /// A cluster node's address: the same `host:port` value as a sentinel's (always given with its port here).
    public typealias Node = RedisSentinelOptions.Node

    /// The kinds of redirection and refusal the cluster answers with, as counted in `redirects`.
    public enum Redirect: String, Sendable, CaseIterable {
        case moved, ask, tryagain, clusterdown
    }

    /// Credentials, TLS and timeouts for every node (`host` and `port` are replaced by each node's).
    public let options: RedisConnectionOptions
    /// Where the map is asked first.
    public let seeds: [Node]
    /// How many times one command is sent at most while redirections and refusals go on (set before first use, as
    /// the two below).
    public var maxAttempts = 12
    /// How long a replicated pipeline waits for a master's replica (`pipeline(_:replicated:)`).
    public var replicationTimeout: Duration = .seconds(1)
    /// Called once per redirection or refusal (for the `cachesync_redis_redirects_total` counter).
    public var onRedirect: @Sendable (Redirect) -> Void = { _ in }

    private let lock = NSLock()
    private var owners = [Int](repeating: -1, count: RedisSlot.count)
    private var masters: [Node] = []
    /// How many replicas each of `masters` has, per the last map.
    private var replicaCounts: [Node: Int] = [:]
    private var connections: [Node: RedisConnection] = [:]
    private var stale = true
    private var counts: [Redirect: Int] = [:]

    /// A cluster reached through `seeds` with `options`' credentials, TLS and timeouts; nothing connects yet.
    public init(options: RedisConnectionOptions, seeds: [Node]) {
        precondition(!seeds.isEmpty, "a cluster needs at least one seed")
        self.options = options
        self.seeds = seeds
    }

    /// The masters and the slot ranges each serves, as last seen (asking the cluster first when the map is stale).
    public func topology() throws(RedisError) -> [(master: Node, slots: [ClosedRange<Int>])] {
        try refreshIfStale()
        return lock.withLock {
            var ranges: [Int: [ClosedRange<Int>]] = [:]
            var start = 0
            for slot in 1...RedisSlot.count where slot == RedisSlot.count || owners[slot] != owners[start] {
                if owners[start] >= 0 { ranges[owners[start], default: []].append(start...(slot - 1)) }
                start = slot
            }
            return masters.indices.map { (masters[$0], ranges[$0] ?? []) }
        }
    }

    /// How many redirections and refusals of each kind this object has seen.
    public var redirects: [Redirect: Int] { lock.withLock { counts } }

    /// The connection to every master, for commands that run per node (`SCAN`, `DBSIZE`).
    public func masterConnections() throws(RedisError) -> [RedisConnection] {
        try refreshIfStale()
        return lock.withLock { masters.map(connectionLocked) }
    }

    /// The connection to the master of `slot`.
    public func connection(forSlot slot: Int) throws(RedisError) -> RedisConnection {
        try refreshIfStale()
        return try locked { () throws(RedisError) -> RedisConnection in
            let owner = owners[slot]
            guard owner >= 0 else { throw uncovered(slot) }
            return connectionLocked(masters[owner])
        }
    }

    /// Asks the cluster for its map now: the known masters first, then the seeds.
    public func refreshTopology() throws(RedisError) {
        var candidates: [Node] = []
        for node in lock.withLock({ masters }) + seeds where !candidates.contains(node) { candidates.append(node) }
        var lastError: RedisError?
        for node in candidates {
            do {
                let reply = try lock.withLock { connectionLocked(node) }.command(["CLUSTER", "SLOTS"])
                try install(reply, from: node)
                return
            } catch where error.message.contains("cluster support disabled") {
                throw RedisError(kind: .server, endpoint: node.description, message: """
                    is not a Redis Cluster node (cluster support disabled), but cachesync is configured for a cluster
                    """)
            } catch {
                lastError = error
            }
        }
        throw lastError ?? RedisError(kind: .other, endpoint: endpoint, message: "no cluster node answered")
    }

    public func command(_ arguments: [[UInt8]]) throws(RedisError) -> RedisReply {
        let reply = try send(arguments, firstReply: nil)
        if case .error = reply { try throwFirstError(in: [reply]) }
        return reply
    }

    /// Each command goes to its slot's master; the commands of one master are pipelined, the masters one after
    /// another. A command answered with a redirection or refusal is sent again on its own, in the order given.
    public func pipeline(_ commands: [[[UInt8]]]) throws(RedisError) -> [RedisReply] {
        try pipeline(commands, replicated: false)
    }

    /// `pipeline`; with `replicated`, each master that has replicas is also asked to wait until one of them has the
    /// commands (`WAIT 1 <replicationTimeout>`) before its part counts as done, so that a failover right after the
    /// call keeps them (a replica that does not answer in time is not waited for longer: the call goes on).
    public func pipeline(_ commands: [[[UInt8]]], replicated: Bool) throws(RedisError) -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        try refreshIfStale()
        var groups: [Node: [Int]] = [:]
        var order: [Node] = []
        try locked { () throws(RedisError) in
            for index in commands.indices {
                let slot = Self.slot(of: commands[index]) ?? 0
                guard owners[slot] >= 0 else { throw uncovered(slot) }
                let node = masters[owners[slot]]
                if groups[node] == nil { order.append(node) }
                groups[node, default: []].append(index)
            }
        }
        var replies = [RedisReply](repeating: .null, count: commands.count)
        for node in order {
            let indices = groups[node]!
            let (connection, waits) = lock.withLock { (connectionLocked(node), replicated && replicaCounts[node, default: 0] > 0) }
            var answered: [RedisReply]
            do {
                answered = try connection.pipeline(indices.map { commands[$0] } + (waits ? [Self.wait(replicationTimeout)] : []))
                if waits { answered.removeLast() }
            } catch {
                markStale()
                throw error
            }
            for (index, reply) in zip(indices, answered) { replies[index] = reply }
        }
        var resent = false
        for index in replies.indices where Self.redirect(of: replies[index]) != nil {
            replies[index] = try send(commands[index], firstReply: replies[index])
            resent = true
        }
        if replicated && resent {
            // The commands sent again went wherever the redirections pointed: wait on every master with replicas.
            let waiting = lock.withLock { masters.filter { replicaCounts[$0, default: 0] > 0 }.map(connectionLocked) }
            for connection in waiting { _ = try connection.pipeline([Self.wait(replicationTimeout)]) }
        }
        return replies
    }

    /// The master of each slot as the map says now (asking the cluster first when the map is stale): its address,
    /// the same for slots of one master.
    public func owners(ofSlots slots: [Int]) throws(RedisError) -> [Node] {
        try refreshIfStale()
        return try locked { () throws(RedisError) -> [Node] in
            try slots.map { slot throws(RedisError) -> Node in
                guard owners[slot] >= 0 else { throw uncovered(slot) }
                return masters[owners[slot]]
            }
        }
    }

    /// The masters as the map says now (asking the cluster first when the map is stale), and the index among them of
    /// each slot's master: one look at the map for a whole batch.
    public func masterIndices(ofSlots slots: [Int]) throws(RedisError) -> (masters: [Node], owners: [Int]) {
        try refreshIfStale()
        return try locked { () throws(RedisError) -> ([Node], [Int]) in
            let indices = try slots.map { slot throws(RedisError) -> Int in
                guard owners[slot] >= 0 else { throw uncovered(slot) }
                return owners[slot]
            }
            return (masters, indices)
        }
    }

    /// Sends the commands of `laidOut` to `node` as they are, without following redirections (a reply such as `MOVED`
    /// comes back as an `.error`); with `replicated`, `WAIT 1` follows them as in `pipeline(_:replicated:)`. A
    /// connection error marks the map stale and throws.
    /// (Replies of a part `sendAhead` wrote to the same node are read first and kept for `awaitSent`.)
    public func send(_ laidOut: RedisCommandBatch, to node: Node, replicated: Bool) throws(RedisError) -> [RedisReply] {
        let (connection, waits, batch) = part(laidOut, to: node, replicated: replicated)
        do {
            var replies = try connection.pipeline(batch)
            if waits { replies.removeLast() }
            return replies
        } catch {
            markStale()
            throw error
        }
    }

    /// What `sendAhead` wrote to one master, for `awaitSent`.
    public struct SentPart: Sendable {
        public let node: Node
        let connection: RedisConnection
        let waits: Bool
        /// How many replies it expects (its commands and `WAIT`).
        let count: Int
    }

    /// `send` without waiting for the replies, which `awaitSent` takes (parts for several masters can be sent
    /// before any is awaited, so the masters work at once).
    public func sendAhead(_ laidOut: RedisCommandBatch, to node: Node, replicated: Bool) throws(RedisError) -> SentPart {
        let (connection, waits, batch) = part(laidOut, to: node, replicated: replicated)
        do {
            try connection.sendPipeline(batch)
        } catch {
            markStale()
            throw error
        }
        return SentPart(node: node, connection: connection, waits: waits, count: batch.count)
    }

    /// `node`'s connection, whether it waits for a replica, and `laidOut` with `WAIT 1` behind it when it does.
    private func part(_ laidOut: RedisCommandBatch, to node: Node, replicated: Bool)
        -> (RedisConnection, waits: Bool, RedisCommandBatch) {
        let (connection, waits) = lock.withLock { (connectionLocked(node), replicated && replicaCounts[node, default: 0] > 0) }
        var batch = laidOut
        if waits { batch.append(Self.wait(replicationTimeout).map { String(decoding: $0, as: UTF8.self) }) }
        return (connection, waits, batch)
    }

    /// The replies of a part `sendAhead` wrote (without `WAIT`'s), one per command. A connection error marks the map
    /// stale and throws.
    public func awaitSent(_ part: SentPart) throws(RedisError) -> [RedisReply] {
        var replies: [RedisReply]
        do {
            replies = try part.connection.awaitPipeline()
        } catch {
            markStale()
            throw error
        }
        guard replies.count == part.count else {
            throw RedisError(kind: .protocolViolation, endpoint: part.node.description,
                             message: "\(replies.count) replies to a pipeline of \(part.count) commands")
        }
        if part.waits { replies.removeLast() }
        return replies
    }

    /// Whether `reply` is a redirection or refusal of the cluster (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`), or a
    /// script's refusal to touch a key this node does not serve now: the command, or the script from that key on,
    /// should be sent again slot by slot. A `MOVED` or a non-local key also marks the map stale.
    public func isMisrouted(_ reply: RedisReply) -> Bool {
        if let (kind, _) = Self.redirect(of: reply) {
            note(kind)
            if kind == .moved || kind == .clusterdown { markStale() }
            return true
        }
        guard case .error(let text) = reply else { return false }
        let misrouted = text.contains("non local key") || text.contains("do not hash to the same slot")
            || text.contains("cluster is down")
        if misrouted { markStale() }
        return misrouted
    }

    public func throwFirstError(in replies: [RedisReply]) throws(RedisError) {
        let node = lock.withLock { masters.first ?? seeds[0] }
        try lock.withLock { connectionLocked(node) }.throwFirstError(in: replies)
    }

    public func scan(match pattern: String, count: Int, _ body: ([String]) throws -> Bool) throws {
        for connection in try masterConnections() {
            var stopped = false
            try connection.scan(match: pattern, count: count) { keys in
                stopped = try !body(keys)
                return !stopped
            }
            if stopped { return }
        }
    }

    public func close() {
        let all = lock.withLock { Array(connections.values) }
        for connection in all { connection.close() }
    }

    /// The slot a command's key falls in, or `nil` for a command without a key (`PING`, `SCAN`, a script without
    /// keys), which any master may run. The key is the first argument, or the first key of `EVAL`/`EVALSHA`.
    public static func slot(of command: [[UInt8]]) -> Int? {
        guard command.count > 1 else { return nil }
        let name = String(decoding: command[0], as: UTF8.self).uppercased()
        switch name {
        case "EVAL", "EVALSHA":
            guard command.count > 3, let keys = Int(String(decoding: command[2], as: UTF8.self)), keys > 0 else { return nil }
            return RedisSlot.of(utf8: command[3])
        case "PING", "INFO", "SCAN", "CLUSTER", "ROLE", "SCRIPT", "DBSIZE", "ACL", "ASKING", "CLIENT", "HELLO", "AUTH",
             "SELECT", "CONFIG":
            return nil
        default:
            return RedisSlot.of(utf8: command[1])
        }
    }

    /// Sends one command to its slot's master and follows redirections; `firstReply` is an answer already had
    /// from a pipeline. Returns the final reply, which may be an error reply other than a redirection.
    private func send(_ command: [[UInt8]], firstReply: RedisReply?) throws(RedisError) -> RedisReply {
        let slot = Self.slot(of: command) ?? 0
        var reply = firstReply
        var asking: Node?
        for attempt in 0..<maxAttempts {
            if let previous = reply {
                guard let (kind, node) = Self.redirect(of: previous) else { return previous }
                note(kind)
                switch kind {
                case .moved:
                    if let node { lock.withLock { assign(slot, to: node) } }
                    markStale()
                    asking = nil
                case .ask:
                    asking = node
                case .tryagain, .clusterdown:
                    asking = nil
                    usleep(UInt32(min(25_000 << min(attempt, 5), 500_000)))
                    if kind == .clusterdown { markStale() }
                }
            }
            if let target = asking {
                let connection = lock.withLock { connectionLocked(target) }
                let replies = try connection.pipeline([[Array("ASKING".utf8)], command])
                reply = replies.count == 2 ? replies[1] : replies.first
            } else {
                let connection = try self.connection(forSlot: slot)
                do {
                    reply = try connection.pipeline([command])[0]
                } catch {
                    markStale()
                    throw error
                }
            }
        }
        guard let reply else { throw RedisError(kind: .other, endpoint: endpoint, message: "no reply") }
        if let (kind, _) = Self.redirect(of: reply) {
            note(kind)
            throw RedisError(kind: .server, endpoint: endpoint,
                             message: "still redirected after \(maxAttempts) attempts: \(reply.text ?? "")")
        }
        return reply
    }

    /// `WAIT 1 <timeout ms>`.
    private static func wait(_ timeout: Duration) -> [[UInt8]] {
        let milliseconds = timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        return [Array("WAIT".utf8), Array("1".utf8), Array(String(max(1, milliseconds)).utf8)]
    }

    /// The redirection or refusal an error reply stands for, with the node it names (`MOVED`, `ASK`).
    private static func redirect(of reply: RedisReply) -> (Redirect, Node?)? {
        guard case .error(let text) = reply else { return nil }
        let words = text.split(separator: " ")
        guard let first = words.first else { return nil }
        switch first {
        case "MOVED", "ASK":
            let node = words.count >= 3 ? parseNode(String(words[2])) : nil
            return (first == "MOVED" ? .moved : .ask, node)
        case "TRYAGAIN": return (.tryagain, nil)
        case "CLUSTERDOWN": return (.clusterdown, nil)
        default: return nil
        }
    }

    /// `host:port` (the host may be an IPv6 address, without brackets in Redis's answers).
    private static func parseNode(_ text: String) -> Node? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(String(text[text.index(after: colon)...])) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return Node(host: host, port: port)
    }

    /// Installs the map of a `CLUSTER SLOTS` reply: `[start, end, [host, port, id, …], replicas…]` per range.
    private func install(_ reply: RedisReply, from node: Node) throws(RedisError) {
        guard let ranges = reply.array else {
            throw RedisError(kind: .protocolViolation, endpoint: node.description, message: "unexpected CLUSTER SLOTS reply")
        }
        var fresh = [Int](repeating: -1, count: RedisSlot.count)
        var nodes: [Node] = []
        var replicas: [Node: Int] = [:]
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].integer, let end = parts[1].integer,
                  let master = parts[2].array, master.count >= 2, let port = master[1].integer,
                  start >= 0, end < RedisSlot.count, start <= end else {
                throw RedisError(kind: .protocolViolation, endpoint: node.description, message: "unexpected CLUSTER SLOTS reply")
            }
            // An empty host means "the node you asked" (cluster-preferred-endpoint-type unknown-endpoint).
            let host = master[0].text.flatMap { $0.isEmpty || $0 == "?" ? nil : $0 } ?? node.host
            let owner = Node(host: host, port: Int(port))
            let index = nodes.firstIndex(of: owner) ?? { nodes.append(owner); return nodes.count - 1 }()
            for slot in Int(start)...Int(end) { fresh[slot] = index }
            replicas[owner] = parts.count - 3
        }
        lock.withLock {
            owners = fresh
            masters = nodes
            replicaCounts = replicas
            stale = false
            // Connections to nodes that are no longer masters are closed; the objects stay for reuse.
            for (node, connection) in connections where !nodes.contains(node) { connection.close() }
        }
    }

    /// `slot` now belongs to `node` (a `MOVED` said so). Call with the lock held.
    private func assign(_ slot: Int, to node: Node) {
        let index = masters.firstIndex(of: node) ?? { masters.append(node); return masters.count - 1 }()
        owners[slot] = index
    }

    private func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    private func refreshIfStale() throws(RedisError) {
        if lock.withLock({ stale }) { try refreshTopology() }
    }

    private func markStale() {
        lock.withLock { stale = true }
    }

    private func note(_ kind: Redirect) {
        lock.withLock { counts[kind, default: 0] += 1 }
        onRedirect(kind)
    }

    /// The (lazily connecting) connection to `node`. Call with the lock held.
    private func connectionLocked(_ node: Node) -> RedisConnection {
        if let connection = connections[node] { return connection }
        var nodeOptions = options
        nodeOptions.host = node.host
        nodeOptions.port = node.port
        // connectNow: false never throws.
        let connection = try! RedisConnection(options: nodeOptions, connectNow: false)
        connections[node] = connection
        return connection
    }

    private func uncovered(_ slot: Int) -> RedisError {
        RedisError(kind: .server, endpoint: endpoint, message: "CLUSTERDOWN slot \(slot) is not served by any master")
    }

    /// The seeds, as used in error messages.
    public var endpoint: String {
        "cluster " + seeds.map(\.description).joined(separator: ",")
    }
}
