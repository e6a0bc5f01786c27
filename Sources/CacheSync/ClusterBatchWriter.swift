import CacheSyncCore
import RedisBridge
import RedisSlot

/// Writes batches to a Redis Cluster, where no transaction spans slots: one script per slot the batch touches,
/// pipelined to each slot's master, then the checkpoint (its keys share one slot) once every part was acknowledged
/// by its master and, where the master has replicas, by one of them (`WAIT 1`: one server's transaction and its
/// checkpoint fail over together, parts on several masters would not).
/// After a crash in between, the stream replays the batch from the older checkpoint; every write sets or removes a
/// key outright, so applying a batch again converges to the same state.
///
/// Fencing holds in every slot. Each slot has a fence hash (`SyncKeys.fence(slot:)`, a key in that slot) holding,
/// per collection, the highest lease epoch seen there; the script refuses to write when the fence is above the
/// writer's epoch, and raises it otherwise, check and write being one atomic step on the slot's master. A new leader
/// raises the fence of all 16,384 slots to its epoch (which `LeaderLease` makes larger than any before it) before its
/// first write. So once the new leader writes anything, every slot already refuses the old leader: an old write that
/// lands in a slot did so before that slot's fence was raised, hence before any write of the new leader there, and
/// the new leader replays those events from the checkpoint (which the old leader could only have moved to events
/// whose writes all landed). The fence keys move with their slot in a resharding (a slot's keys move together;
/// while they move Redis answers `TRYAGAIN` or `ASK`, which `RedisCluster` follows), and a promoted replica has them
/// as its master had (raised, like the batches' writes, with `WAIT 1` where there are replicas).
/// Fences must not be evicted: like the checkpoints they have no TTL, which `volatile-*` eviction policies keep.
final class ClusterBatchWriter {
    /// KEYS[1]: the slot's fence; KEYS[2…]: one key per command. ARGV[1]: the namespace, ARGV[2]: the epoch ('' writes
    /// unfenced), then per command: how many arguments follow its key, its name, those arguments. -1 when fenced.
    static let script = RedisScript("""
        if ARGV[2] ~= '' then
          local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
          local mine = tonumber(ARGV[2])
          if held > mine then return -1 end
          if held < mine then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
        end
        local i, k = 3, 2
        while i <= #ARGV do
          local n = tonumber(ARGV[i])
          local command = {ARGV[i + 1], KEYS[k]}
          for j = 1, n do command[j + 2] = ARGV[i + 1 + j] end
          redis.call(unpack(command))
          i = i + n + 2
          k = k + 1
        end
        return 1
        """)

    let cluster: RedisCluster
    let keys: SyncKeys
    /// The epoch every slot's fence was raised to, once this instance did so.
    private var raisedEpoch: String?

    init(cluster: RedisCluster, keys: SyncKeys) {
        self.cluster = cluster
        self.keys = keys
    }

    /// The commands of one batch, grouped by slot in the order the slots first appear (ops of one key keep their
    /// order: they share the slot).
    struct Parts {
        fileprivate var order: [Int] = []
        fileprivate var bySlot: [Int: (keys: [[UInt8]], arguments: [[UInt8]])] = [:]

        var isEmpty: Bool { order.isEmpty }

        /// Adds `name key arguments…` to the part of `key`'s slot.
        mutating func add(_ name: String, _ key: String, _ arguments: [String] = []) {
            let slot = RedisSlot.of(key)
            if bySlot[slot] == nil {
                order.append(slot)
                bySlot[slot] = ([], [])
            }
            bySlot[slot]!.keys.append(Array(key.utf8))
            bySlot[slot]!.arguments.append(Array(String(arguments.count).utf8))
            bySlot[slot]!.arguments.append(Array(name.utf8))
            for argument in arguments { bySlot[slot]!.arguments.append(Array(argument.utf8)) }
        }
    }

    /// The writes of `ops`: each removes the key's read-through lease with it (in the same script: they share a slot).
    static func parts(_ ops: [CacheOp]) -> Parts {
        var parts = Parts()
        for op in ops {
            switch op {
            case .set(let key, let value, let ttl):
                parts.add("UNLINK", key.leaseKey)
                parts.add("SET", key.text, [value, "EX", String(ttl)])
            case .refresh(let key, let value):
                parts.add("UNLINK", key.leaseKey)
                parts.add("SET", key.text, [value, "XX", "KEEPTTL"])
            case .delete(let key, _):
                parts.add("UNLINK", key.leaseKey)
                parts.add("UNLINK", key.text)
            case .skip, .flushCollection: continue
            }
        }
        return parts
    }

    /// Applies `ops` in every slot, then the checkpoint change and the counters. Throws `FencedWriteError` when a
    /// slot's fence is above this instance's epoch, `RedisError` when Redis fails (the checkpoint then stays).
    func apply(_ ops: [CacheOp], checkpoint: BatchApplier.CheckpointChange, events: Int, fence: String?) throws {
        let epoch = try self.epoch(fence)
        try run(Self.parts(ops), epoch: epoch, replicated: true)
        var last = Parts()
        switch checkpoint {
        case .keep: break
        case .delete: last.add("DEL", keys.resume)
        case .set(let cp): last.add("SET", keys.resume, [cp.storedText])
        }
        if events > 0 {
            last.add("HINCRBY", keys.applied, ["events", String(events)])
            last.add("HINCRBY", keys.applied, ["batches", "1"])
        }
        try run(last, epoch: epoch)
    }

    /// The epoch of the lease value `fence` (`<instanceId>|<epoch>`), '' when unfenced; the first time an epoch is
    /// seen, every slot's fence is raised to it.
    private func epoch(_ fence: String?) throws -> String {
        guard let fence else { return "" }
        let epoch = fence.split(separator: "|").last.map(String.init) ?? ""
        guard epoch != raisedEpoch else { return epoch }
        var everySlot: [[[UInt8]]] = []
        everySlot.reserveCapacity(RedisSlot.count)
        for slot in 0..<RedisSlot.count {
            everySlot.append(Self.script.evalshaCommand(keys: [Array(keys.fence(slot: slot).utf8)],
                                                        arguments: [Array(keys.namespace.utf8), Array(epoch.utf8)]))
        }
        try check(try send(everySlot, replicated: true))
        raisedEpoch = epoch
        return epoch
    }

    /// Runs each part's script on its slot's master; with `replicated`, a master with replicas also waits until one
    /// has the writes, so a failover right after keeps what the checkpoint will count as applied.
    private func run(_ parts: Parts, epoch: String, replicated: Bool = false) throws {
        guard !parts.isEmpty else { return }
        let namespace = Array(keys.namespace.utf8), epochBytes = Array(epoch.utf8)
        let commands = parts.order.map { slot in
            let part = parts.bySlot[slot]!
            return Self.script.evalshaCommand(keys: [Array(keys.fence(slot: slot).utf8)] + part.keys,
                                              arguments: [namespace, epochBytes] + part.arguments)
        }
        try check(try send(commands, replicated: replicated))
    }

    /// Sends the `EVALSHA` commands, and again as `EVAL` those a master did not know the script for.
    private func send(_ commands: [[[UInt8]]], replicated: Bool = false) throws(RedisError) -> [RedisReply] {
        var replies = try cluster.pipeline(commands, replicated: replicated)
        let unknown = replies.indices.filter { replies[$0].text?.hasPrefix("NOSCRIPT") == true }
        guard !unknown.isEmpty else { return replies }
        let again = try cluster.pipeline(unknown.map { Self.evalForm(commands[$0]) }, replicated: replicated)
        for (index, reply) in zip(unknown, again) { replies[index] = reply }
        return replies
    }

    /// `EVAL <source> …` for an `EVALSHA <sha1> …` command.
    private static func evalForm(_ evalsha: [[UInt8]]) -> [[UInt8]] {
        [Array("EVAL".utf8), Array(script.source.utf8)] + evalsha.dropFirst(2)
    }

    /// Throws the first error reply, or `FencedWriteError` when a slot refused the epoch.
    private func check(_ replies: [RedisReply]) throws {
        try cluster.throwFirstError(in: replies)
        if replies.contains(.integer(-1)) { throw FencedWriteError(leaseKey: keys.leader) }
    }
}
