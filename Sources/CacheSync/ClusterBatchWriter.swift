import CacheSyncCore
import RedisBridge
import RedisSlot

/// Writes batches to a Redis Cluster, where no transaction spans slots: one script per master with the batch's writes
/// in that master's slots (a script may touch keys of several slots of its own node), then the checkpoint (its keys
/// share one slot) once every part was acknowledged by its master and, where the master has replicas, by one of them
/// (`WAIT 1`: one server's transaction and its checkpoint fail over together, parts on several masters would not).
/// A master's part that meets a slot it does not serve as the map said (moved, or migrating) is sent again as one
/// script per slot, with every key declared, so that Redis's `MOVED`, `ASK` and `TRYAGAIN` apply and `RedisCluster`
/// follows them.
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
    /// The script of one master's part. KEYS[1]: the first slot's fence (which routes it). ARGV[1]: the namespace,
    /// ARGV[2]: the epoch ('' writes unfenced), ARGV[3]: how many fences, then the other fences, then per write: how
    /// many elements follow, the command's name, its key, its arguments. -1 when fenced, before any write.
    static let masterScript = RedisScript("""
        \(refreshHashFunction)
        local ns, epoch, fences = ARGV[1], ARGV[2], tonumber(ARGV[3])
        if epoch ~= '' then
          local mine, low = tonumber(epoch), {}
          for i = 1, fences do
            local fence = i == 1 and KEYS[1] or ARGV[2 + i]
            local held = tonumber(redis.call('HGET', fence, ns) or '0')
            if held > mine then return -1 end
            if held < mine then low[#low + 1] = fence end
          end
          for _, fence in ipairs(low) do redis.call('HSET', fence, ns, epoch) end
        end
        local i = 3 + fences
        while i <= #ARGV do
          local n = tonumber(ARGV[i])
          if ARGV[i + 1] == 'REFRESHHASH' then
            refresh(ARGV[i + 2], {unpack(ARGV, i + 3, i + n)})
          else
            redis.call(unpack(ARGV, i + 1, i + n))
          end
          i = i + n + 1
        end
        return 1
        """)

    /// The script of one slot's part, every key declared. KEYS[1]: the slot's fence, KEYS[2…]: one key per write.
    /// ARGV[1]: the namespace, ARGV[2]: the epoch, then per write: how many arguments follow its key, its name,
    /// those arguments. -1 when fenced.
    static let slotScript = RedisScript("""
        \(refreshHashFunction)
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
          if command[1] == 'REFRESHHASH' then
            refresh(command[2], {unpack(command, 3)})
          else
            redis.call(unpack(command))
          end
          i = i + n + 2
          k = k + 1
        end
        return 1
        """)

    /// `format: hash`'s refresh in a script, as the pseudo-command `REFRESHHASH key fields…`: replaces a cached
    /// hash's fields keeping its remaining TTL (`BatchApplier.refreshHashScript`).
    static let refreshHashFunction = """
        local function refresh(key, fields)
          local ttl = redis.call('PTTL', key)
          if ttl == -2 then return end
          redis.call('DEL', key)
          redis.call('HSET', key, unpack(fields))
          if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
        end
        """

    /// One write: a command with one key.
    enum Write {
        case unlink(String)
        case unlinkWithLease(String, lease: String)
        case setEx(String, value: String, seconds: Int)
        case setKeepTTL(String, value: String)
        case set(String, value: String)
        case del(String)
        case hincrby(String, field: String, by: Int)
        /// `HSET key fields…`, `EXPIRE key seconds`, `REFRESHHASH key fields…` (format: hash).
        case hset(String, fields: [String])
        case expire(String, seconds: Int)
        case refreshHash(String, fields: [String])

        var key: String {
            switch self {
            case .unlink(let key), .unlinkWithLease(let key, _), .setEx(let key, _, _), .setKeepTTL(let key, _), .set(let key, _), .del(let key),
                 .hincrby(let key, _, _), .hset(let key, _), .expire(let key, _), .refreshHash(let key, _): key
            }
        }

        /// The command's name and its arguments after the key.
        var nameAndArguments: (String, [String]) {
            switch self {
            case .unlink: ("UNLINK", [])
            case .unlinkWithLease(_, let lease): ("UNLINK", [lease])
            case .setEx(_, let value, let seconds): ("SET", [value, "EX", String(seconds)])
            case .setKeepTTL(_, let value): ("SET", [value, "XX", "KEEPTTL"])
            case .set(_, let value): ("SET", [value])
            case .del: ("DEL", [])
            case .hincrby(_, let field, let by): ("HINCRBY", [field, String(by)])
            case .hset(_, let fields): ("HSET", fields)
            case .expire(_, let seconds): ("EXPIRE", [String(seconds)])
            case .refreshHash(_, let fields): ("REFRESHHASH", fields)
            }
        }

        /// Appends how many elements follow, the name, the key and the arguments (the master script's form).
        func append(to list: inout RedisArgumentList) {
            switch self {
            case .unlink(let key):
                list.append(number: 2); list.append("UNLINK"); list.append(key)
            case .unlinkWithLease(let key, let lease):
                list.append(number: 3); list.append("UNLINK"); list.append(key); list.append(lease)
            case .setEx(let key, let value, let seconds):
                list.append(number: 5); list.append("SET"); list.append(key); list.append(value); list.append("EX")
                list.append(number: seconds)
            case .setKeepTTL(let key, let value):
                list.append(number: 5); list.append("SET"); list.append(key); list.append(value); list.append("XX")
                list.append("KEEPTTL")
            case .set(let key, let value):
                list.append(number: 3); list.append("SET"); list.append(key); list.append(value)
            case .del(let key):
                list.append(number: 2); list.append("DEL"); list.append(key)
            case .hincrby(let key, let field, let by):
                list.append(number: 4); list.append("HINCRBY"); list.append(key); list.append(field); list.append(number: by)
            case .hset, .expire, .refreshHash:
                let (name, arguments) = nameAndArguments
                list.append(number: 2 + arguments.count); list.append(name); list.append(key)
                for argument in arguments { list.append(argument) }
            }
        }
    }

    let cluster: RedisCluster
    let keys: SyncKeys
    /// The epoch every slot's fence was raised to, once this instance did so.
    private var raisedEpoch: String?
    /// The fence key of each slot, made once.
    private lazy var fenceKeys: [String] = (0..<RedisSlot.count).map(keys.fence(slot:))

    init(cluster: RedisCluster, keys: SyncKeys) {
        self.cluster = cluster
        self.keys = keys
    }

    /// The writes of `ops`, each preceded by the removal of its key's read-through lease (which shares its slot).
    static func writes(_ ops: [CacheOp]) -> [Write] {
        var writes: [Write] = []
        writes.reserveCapacity(2 * ops.count)
        for op in ops {
            switch op {
            case .set(let key, let value, let ttl):
                writes.append(.unlink(key.leaseKey))
                writes.append(.setEx(key.text, value: value, seconds: ttl))
            case .refresh(let key, let value):
                writes.append(.unlink(key.leaseKey))
                writes.append(.setKeepTTL(key.text, value: value))
            case .delete(let key, _):
                // The key and its lease share a slot: one command removes both.
                writes.append(.unlinkWithLease(key.text, lease: key.leaseKey))
            case .setHash(let key, let fields, let ttl):
                writes.append(.unlink(key.leaseKey))
                writes.append(.unlink(key.text))
                writes.append(.hset(key.text, fields: fields))
                writes.append(.expire(key.text, seconds: ttl))
            case .refreshHash(let key, let fields):
                writes.append(.unlink(key.leaseKey))
                writes.append(.refreshHash(key.text, fields: fields))
            case .indexSet(let key, let value, let ttl):
                writes.append(.setEx(key, value: value, seconds: ttl))
            case .indexDelete(let key):
                writes.append(.unlink(key))
            case .skip, .flushCollection: continue
            }
        }
        return writes
    }

    /// Applies `ops` in every slot, then the checkpoint change and the counters. Throws `FencedWriteError` when a
    /// slot's fence is above this instance's epoch, `RedisError` when Redis fails (the checkpoint then stays).
    func apply(_ ops: [CacheOp], checkpoint: BatchApplier.CheckpointChange, events: Int,
               warmup: BatchApplier.WarmupChange = .keep, fence: String?) throws {
        let epoch = try self.epoch(fence)
        try run(Self.writes(ops), epoch: epoch, replicated: true)
        var last: [Write] = []
        switch checkpoint {
        case .keep: break
        case .delete: last.append(.del(keys.resume))
        case .set(let cp): last.append(.set(keys.resume, value: cp.storedText))
        }
        switch warmup {
        case .keep: break
        case .delete: last.append(.del(keys.warmup))
        case .set(let text): last.append(.set(keys.warmup, value: text))
        }
        if events > 0 {
            last.append(.hincrby(keys.applied, field: "events", by: events))
            last.append(.hincrby(keys.applied, field: "batches", by: 1))
        }
        try run(last, epoch: epoch, replicated: false)
    }

    /// The epoch of the lease value `fence` (`<instanceId>|<epoch>`), '' when unfenced; the first time an epoch is
    /// seen, every slot's fence is raised to it (slot by slot: once per new leader).
    private func epoch(_ fence: String?) throws -> String {
        guard let fence else { return "" }
        let epoch = fence.split(separator: "|").last.map(String.init) ?? ""
        guard epoch != raisedEpoch else { return epoch }
        let everySlot = (0..<RedisSlot.count).map { slot in
            Self.slotScript.evalshaCommand(keys: [Array(fenceKeys[slot].utf8)],
                                           arguments: [Array(keys.namespace.utf8), Array(epoch.utf8)])
        }
        try check(try sendSlotScripts(everySlot, replicated: true))
        raisedEpoch = epoch
        return epoch
    }

    /// Runs `writes`: one script per master, in the order the masters first appear; a master's part that was
    /// misrouted again slot by slot. With `replicated`, a master with replicas also waits until one has them.
    private func run(_ writes: [Write], epoch: String, replicated: Bool) throws {
        guard !writes.isEmpty else { return }
        let slots = writes.map { RedisSlot.of($0.key) }
        let owners = try cluster.owners(ofSlots: slots)
        var order: [RedisCluster.Node] = []
        var byMaster: [[Int]] = []
        for index in writes.indices {
            if let at = order.firstIndex(of: owners[index]) {
                byMaster[at].append(index)
            } else {
                order.append(owners[index])
                byMaster.append([index])
            }
        }
        var seen = [Bool](repeating: false, count: RedisSlot.count)
        for (master, indices) in zip(order, byMaster) {
            var fences: [Int] = []
            for index in indices where !seen[slots[index]] {
                seen[slots[index]] = true
                fences.append(slots[index])
            }
            var arguments = RedisArgumentList()
            arguments.append(keys.namespace)
            arguments.append(epoch)
            arguments.append(number: fences.count)
            for slot in fences.dropFirst() { arguments.append(fenceKeys[slot]) }
            for index in indices { writes[index].append(to: &arguments) }
            var command = RedisCommandBatch()
            command.append(["EVALSHA", Self.masterScript.sha1, "1", fenceKeys[fences[0]]], arguments)
            var reply = try cluster.send(command, to: master, replicated: replicated)[0]
            if reply.text?.hasPrefix("NOSCRIPT") == true {
                var again = RedisCommandBatch()
                again.append(["EVAL", Self.masterScript.source, "1", fenceKeys[fences[0]]], arguments)
                reply = try cluster.send(again, to: master, replicated: replicated)[0]
            }
            if cluster.isMisrouted(reply) {
                try check(try sendSlotScripts(slotCommands(indices.map { writes[$0] }, epoch: epoch), replicated: replicated))
            } else {
                try check([reply])
            }
        }
    }

    /// The values of `keys` (nil where missing): one pipeline of `GET`s per master, the masters one after another;
    /// a `GET` that was misrouted is sent again through `RedisCluster.command`, which follows redirections.
    func read(_ keys: [String]) throws(RedisError) -> [RedisReply] {
        let owners = try cluster.owners(ofSlots: keys.map(RedisSlot.of))
        var replies = [RedisReply](repeating: .null, count: keys.count)
        var pending = Array(keys.indices)
        while let first = pending.first {
            let master = owners[first]
            let indices = pending.filter { owners[$0] == master }
            pending.removeAll { owners[$0] == master }
            var batch = RedisCommandBatch()
            for i in indices { batch.append("GET", keys[i]) }
            for (i, reply) in zip(indices, try cluster.send(batch, to: master, replicated: false)) {
                replies[i] = cluster.isMisrouted(reply) ? try cluster.command(["GET", keys[i]]) : reply
            }
        }
        try cluster.throwFirstError(in: replies)
        return replies
    }

    /// One slot script per slot `writes` touch, in the order the slots first appear.
    private func slotCommands(_ writes: [Write], epoch: String) -> [[[UInt8]]] {
        var order: [Int] = []
        var bySlot: [Int: (keys: [[UInt8]], arguments: [[UInt8]])] = [:]
        for write in writes {
            let slot = RedisSlot.of(write.key)
            if bySlot[slot] == nil {
                order.append(slot)
                bySlot[slot] = ([Array(fenceKeys[slot].utf8)], [Array(keys.namespace.utf8), Array(epoch.utf8)])
            }
            let (name, arguments) = write.nameAndArguments
            bySlot[slot]!.keys.append(Array(write.key.utf8))
            bySlot[slot]!.arguments.append(Array(String(arguments.count).utf8))
            bySlot[slot]!.arguments.append(Array(name.utf8))
            for argument in arguments { bySlot[slot]!.arguments.append(Array(argument.utf8)) }
        }
        return order.map { Self.slotScript.evalshaCommand(keys: bySlot[$0]!.keys, arguments: bySlot[$0]!.arguments) }
    }

    /// Sends slot scripts through `RedisCluster.pipeline` (which follows redirections), and again as `EVAL` those a
    /// master did not know.
    private func sendSlotScripts(_ commands: [[[UInt8]]], replicated: Bool) throws(RedisError) -> [RedisReply] {
        var replies = try cluster.pipeline(commands, replicated: replicated)
        let unknown = replies.indices.filter { replies[$0].text?.hasPrefix("NOSCRIPT") == true }
        guard !unknown.isEmpty else { return replies }
        let again = try cluster.pipeline(unknown.map { Self.evalForm(commands[$0]) }, replicated: replicated)
        for (index, reply) in zip(unknown, again) { replies[index] = reply }
        return replies
    }

    /// `EVAL <source> …` for an `EVALSHA <sha1> …` command of the slot script.
    private static func evalForm(_ evalsha: [[UInt8]]) -> [[UInt8]] {
        [Array("EVAL".utf8), Array(slotScript.source.utf8)] + evalsha.dropFirst(2)
    }

    /// Throws the first error reply, or `FencedWriteError` when a slot refused the epoch.
    private func check(_ replies: [RedisReply]) throws {
        try cluster.throwFirstError(in: replies)
        if replies.contains(.integer(-1)) { throw FencedWriteError(leaseKey: keys.leader) }
    }
}
