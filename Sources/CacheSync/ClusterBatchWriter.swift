import CacheSyncCore
import RedisBridge
import RedisSlot

/// Writes batches to a Redis Cluster, where no transaction spans slots: one script per master with the batch's writes
/// in that master's slots (a script may touch keys of several slots of its own node), then the checkpoint (its keys
/// share one slot) once every part was acknowledged by its master and, where the master has replicas, by one of them
/// (`WAIT 1`: one server's transaction and its checkpoint fail over together, parts on several masters would not):
/// first in the next batch's script on its master when the caller sends one at once, else on its own.
/// A master's part that meets a slot it does not serve as the map said (moved, or migrating) is sent again as one
/// script per slot, with every key declared, so that Redis's `MOVED`, `ASK` and `TRYAGAIN` apply and `RedisCluster`
/// follows them.
/// After a crash in between, the stream replays the batch from the older checkpoint; every write sets or removes a
/// key outright, so applying a batch again converges to the same state.
///
/// Fencing holds in every slot. Each slot has a fence hash (`SyncKeys.fence(slot:)`, a key in that slot) holding,
/// per collection, the highest lease epoch seen there. A new leader raises the fences of all 16,384 slots to its epoch
/// (which `LeaderLease` makes larger than any before it) before its first write, and every script checks one fence on
/// its node, that of its first write's slot, before any write: above the writer's epoch, it refuses the whole part.
/// A check and the writes behind it are one atomic step on the node. So an old leader's script either finds that
/// fence raised and writes nothing, or runs entirely before the new leader finished raising every fence, hence
/// before the new leader's first write anywhere: whatever it wrote is overwritten when the new leader replays the
/// events from the checkpoint (which the old leader could only have moved to events whose writes all landed), in
/// stream order. (Checking the fence of every slot a part writes, as the first version did, adds nothing to this
/// argument and cost a command per slot.) The fence keys move with their slot in a resharding (a slot's keys move
/// together; while they move Redis answers `TRYAGAIN` or `ASK`, which `RedisCluster` follows), and a promoted replica
/// has them as its master had (raised, like the batches' writes, with `WAIT 1` where there are replicas).
/// Fences must not be evicted: like the checkpoints they have no TTL, which `volatile-*` eviction policies keep.
final class ClusterBatchWriter {
    /// The script of a part: one master's writes (a script may touch keys of several slots of its own node), or one
    /// slot's with every key declared. KEYS[1]: the fence of the first write's slot (which routes it), then, for one
    /// slot, the writes' keys (only declared: the script reads every name from ARGV). ARGV[1]: the namespace,
    /// ARGV[2]: the epoch ('' writes unfenced), then runs of writes of one kind: a letter, how many writes, and each
    /// write's key and arguments (`Write`). -1 when fenced, before any write; a fence below the epoch is raised to it.
    static let script = RedisScript("""
        local ns, epoch = ARGV[1], ARGV[2]
        if epoch ~= '' then
          local held = tonumber(redis.call('HGET', KEYS[1], ns) or '0')
          local mine = tonumber(epoch)
          if held > mine then return -1 end
          if held < mine then redis.call('HSET', KEYS[1], ns, epoch) end
        end
        local call, i, n = redis.call, 3, #ARGV
        while i <= n do
          local op, count = ARGV[i], tonumber(ARGV[i + 1])
          i = i + 2
          local named = op == 's' or op == 'r' or op == 'd' or op == 'h' or op == 'f'
          local sent = op == 'S' or op == 'R' or op == 'D' or op == 'H' or op == 'F'
          if sent then op = string.lower(op) end
          for _ = 1, count do
            local key, lease = ARGV[i]
            if named then
              lease = '{' .. key .. '}\(CacheKey.leaseSuffix)'
            elseif sent then
              lease = ARGV[i + 1]
              i = i + 1
            end
            if op == 's' then
              call('UNLINK', lease)
              call('SET', key, ARGV[i + 1], 'EX', ARGV[i + 2])
              i = i + 3
            elseif op == 'r' then
              call('UNLINK', lease)
              call('SET', key, ARGV[i + 1], 'XX', 'KEEPTTL')
              i = i + 2
            elseif op == 'd' then
              call('UNLINK', key, lease)
              i = i + 1
            elseif op == 'h' then
              local last = i + 2 + tonumber(ARGV[i + 2])
              call('UNLINK', key, lease)
              call('HSET', key, unpack(ARGV, i + 3, last))
              call('EXPIRE', key, ARGV[i + 1])
              i = last + 1
            elseif op == 'f' then
              local last = i + 1 + tonumber(ARGV[i + 1])
              call('UNLINK', lease)
              local ttl = call('PTTL', key)
              if ttl ~= -2 then
                call('DEL', key)
                call('HSET', key, unpack(ARGV, i + 2, last))
                if ttl > 0 then call('PEXPIRE', key, ttl) end
              end
              i = last + 1
            elseif op == 'I' then
              call('SET', key, ARGV[i + 1], 'EX', ARGV[i + 2])
              i = i + 3
            elseif op == 'U' then
              call('UNLINK', key)
              i = i + 1
            elseif op == 'P' then
              call('SET', key, ARGV[i + 1])
              i = i + 2
            elseif op == 'X' then
              call('DEL', key)
              i = i + 1
            elseif op == 'C' then
              call('HINCRBY', key, ARGV[i + 1], ARGV[i + 2])
              i = i + 3
            else
              return redis.error_reply('cachesync: unknown write ' .. tostring(op))
            end
          end
        end
        return 1
        """)

    /// One write, in the script's form: a letter, the key, then its arguments (consecutive writes of one letter to
    /// one master share it: the letter, their count, then each one's key and arguments). The cache's writes also
    /// remove the key's read-through lease (which shares its slot): named by the script, `{<key>}:lease`, after a
    /// lowercase letter (`CacheKey.derivedKeyWrapsText`, the usual case), or sent after the key with an uppercase
    /// one.
    enum Write {
        /// A cache op (`.skip` and `.flushCollection` are not writes), `lease` as above:
        /// `s key [lease] value seconds` (`UNLINK` the lease, `SET … EX`), `r key [lease] value` (`SET … XX KEEPTTL`),
        /// `d key [lease]` (`UNLINK` both), `h key [lease] seconds count fields…` (`UNLINK` both, `HSET`, `EXPIRE`),
        /// `f key [lease] count fields…` (a cached hash's fields replaced keeping its TTL, `format: hash`'s refresh),
        /// `I key value seconds` (a secondary key's `SET … EX`), `U key` (its `UNLINK`).
        case cache(CacheOp)
        /// `P key value`: `SET` without a TTL (the checkpoint, the warm-up position).
        case set(String, value: String)
        /// `X key`: `DEL`.
        case del(String)
        /// `C key field by`: `HINCRBY`.
        case hincrby(String, field: String, by: Int)

        /// The key whose slot the write goes to (the lease shares it).
        var key: String {
            switch self {
            case .cache(let op): Self.key(of: op) ?? ""
            case .set(let key, _), .del(let key), .hincrby(let key, _, _): key
            }
        }

        /// The key whose slot a cache op's write goes to; nil for an op that writes nothing.
        static func key(of op: CacheOp) -> String? {
            switch op {
            case .set(let key, _, _), .refresh(let key, _), .delete(let key, _), .setHash(let key, _, _),
                 .refreshHash(let key, _): key.text
            case .indexSet(let key, _, _), .indexDelete(let key): key
            case .skip, .flushCollection: nil
            }
        }

        /// Every key the write touches, as a slot script declares them.
        var keys: [String] {
            switch self {
            case .cache(.set(let key, _, _)), .cache(.refresh(let key, _)), .cache(.delete(let key, _)),
                 .cache(.setHash(let key, _, _)), .cache(.refreshHash(let key, _)):
                [key.text, key.leaseKey]
            default: [key]
            }
        }

        /// Appends the write as a run of its own: its letter, 1, its key and its arguments.
        func append(to list: inout some ScriptArguments) {
            switch self {
            case .cache(let op):
                guard let letter = Self.letter(of: op) else { return }
                list.append(letter); list.append(number: 1)
                Self.appendArguments(op, to: &list)
            case .set(let key, let value):
                list.append("P"); list.append(number: 1); list.append(key); list.append(value)
            case .del(let key):
                list.append("X"); list.append(number: 1); list.append(key)
            case .hincrby(let key, let field, let by):
                list.append("C"); list.append(number: 1); list.append(key); list.append(field); list.append(number: by)
            }
        }

        /// A cache op's letter (uppercase when its lease follows its key); nil for an op that writes nothing.
        static func letter(of op: CacheOp) -> String? {
            switch op {
            case .set(let key, _, _): key.derivedKeyWrapsText ? "s" : "S"
            case .refresh(let key, _): key.derivedKeyWrapsText ? "r" : "R"
            case .delete(let key, _): key.derivedKeyWrapsText ? "d" : "D"
            case .setHash(let key, _, _): key.derivedKeyWrapsText ? "h" : "H"
            case .refreshHash(let key, _): key.derivedKeyWrapsText ? "f" : "F"
            case .indexSet: "I"
            case .indexDelete: "U"
            case .skip, .flushCollection: nil
            }
        }

        /// Appends a cache op's key (and lease, after an uppercase letter) and arguments, without its letter; with
        /// `ttlPending`, a TTL is left to be given later (`RedisArgumentList.appendPendingNumber()`).
        static func appendArguments(_ op: CacheOp, to list: inout some ScriptArguments, ttlPending: Bool = false) {
            switch op {
            case .set(let key, let value, let ttl):
                append(key, to: &list); list.append(value)
                if ttlPending { list.appendPendingNumber() } else { list.append(number: ttl) }
            case .refresh(let key, let value):
                append(key, to: &list); list.append(value)
            case .delete(let key, _):
                append(key, to: &list)
            case .setHash(let key, let fields, let ttl):
                append(key, to: &list)
                if ttlPending { list.appendPendingNumber() } else { list.append(number: ttl) }
                list.append(number: fields.count)
                for field in fields { list.append(field) }
            case .refreshHash(let key, let fields):
                append(key, to: &list); list.append(number: fields.count)
                for field in fields { list.append(field) }
            case .indexSet(let key, let value, let ttl):
                list.append(key); list.append(value); list.append(number: ttl)
            case .indexDelete(let key):
                list.append(key)
            case .skip, .flushCollection: break
            }
        }

        /// The TTL of a cache op that has one (`.set`, `.setHash`).
        static func ttl(of op: CacheOp) -> Int? {
            switch op {
            case .set(_, _, let ttl), .setHash(_, _, let ttl): ttl
            default: nil
            }
        }

        /// A cache write's key, and its lease when the script does not name it.
        private static func append(_ key: CacheKey, to list: inout some ScriptArguments) {
            list.append(key.text)
            if !key.derivedKeyWrapsText { list.append(key.leaseKey) }
        }
    }

    let cluster: RedisCluster
    let keys: SyncKeys
    /// The epoch every slot's fence was raised to, once this instance did so.
    private var raisedEpoch: String?
    /// The fence key of each slot, made once.
    private lazy var fenceKeys: [String] = (0..<RedisSlot.count).map(keys.fence(slot:))
    /// The batch `send` wrote, until `awaitSent` or `abandonSent`.
    private var inFlight: InFlight?

    /// A batch whose writes went to their masters: their parts, unacknowledged, and the checkpoint's writes that
    /// follow once every part is.
    private struct InFlight {
        var writes: Writes
        var parts: [Part]
        var epoch: String
        var last: [Write]
    }

    /// The checkpoint's writes of a batch whose parts were all acknowledged, held for the next batch (`send`), whose
    /// part on their master writes them first: a round trip less per batch.
    private var carried: (writes: [Write], epoch: String)?

    /// A batch's writes: its ops (`.skip` and `.flushCollection` write nothing), then writes of other kinds (the
    /// checkpoint's, those carried from the batch before); write `i` is `ops[i]` below `ops.count`. (The ops are
    /// kept as they are, not copied one by one into writes.)
    private struct Writes {
        var ops: [CacheOp] = []
        var more: [Write] = []

        var count: Int { ops.count + more.count }

        subscript(index: Int) -> Write {
            index < ops.count ? .cache(ops[index]) : more[index - ops.count]
        }
    }

    /// One master's script, sent: its writes (indices) and its arguments after the script's name, for `EVAL` when
    /// the master did not know the script.
    private struct Part {
        var sent: RedisCluster.SentPart
        var indices: [Int]
        var head: [String]
        var laidOut: [RedisArgumentList]
    }

    /// A batch's writes, then its checkpoint's, laid out per master (`plan`) while the batch before it is still in
    /// flight; `send` writes them.
    struct Plan {
        var ops: [CacheOp]
        var last: [Write]
        /// The layout by the slot map of the moment; nil when the map could not be had then (`send` lays out again).
        fileprivate var routing: Routing?
        /// Whether the layout left TTLs out: `withTTLs(of:)` gives them.
        fileprivate var ttlsPending = false

        /// The plan with the TTLs it left out taken from `ops` (the ops it was made of, their TTLs now final).
        func withTTLs(of ops: [CacheOp]) -> Plan {
            guard ttlsPending else { return self }
            precondition(ops.count == self.ops.count, "the TTLs come from the ops the plan was made of")
            var plan = self
            plan.ops = ops
            plan.ttlsPending = false
            if var routing = plan.routing {
                for master in routing.laidOut.indices where !routing.ttlWrites[master].isEmpty {
                    routing.laidOut[master] = routing.laidOut[master].filling(routing.ttlWrites[master].map {
                        Write.ttl(of: ops[$0]) ?? 0
                    })
                    routing.ttlWrites[master] = []
                }
                plan.routing = routing
            }
            return plan
        }
    }

    /// Writes laid out per master: the masters (as the map had them), in the order they first appear, each with its
    /// writes (indices), the slot of its first write (whose fence its script checks) and their arguments.
    fileprivate struct Routing {
        var masters: [RedisCluster.Node]
        var order: [Int] = []
        var indices: [[Int]]
        var fenceSlots: [Int]
        var laidOut: [RedisArgumentList]
        /// Writes carried from the batch before (its checkpoint's), written first in their master's script.
        var carriedIndices: [[Int]]
        var carriedLaidOut: [RedisArgumentList]
        /// Per master, the writes whose TTLs were left out of its arguments, in order.
        var ttlWrites: [[Int]]

        init(masters: [RedisCluster.Node]) {
            self.masters = masters
            indices = Array(repeating: [], count: masters.count)
            fenceSlots = Array(repeating: 0, count: masters.count)
            laidOut = Array(repeating: RedisArgumentList(), count: masters.count)
            carriedIndices = indices
            carriedLaidOut = laidOut
            ttlWrites = indices
        }

        /// The index of `node`, added when the map of the layout did not have it.
        mutating func index(of node: RedisCluster.Node) -> Int {
            if let index = masters.firstIndex(of: node) { return index }
            masters.append(node)
            indices.append([])
            fenceSlots.append(0)
            laidOut.append(RedisArgumentList())
            carriedIndices.append([])
            carriedLaidOut.append(RedisArgumentList())
            ttlWrites.append([])
            return masters.count - 1
        }

        /// Adds the cache op `op` (write `index`, in `slot`) to the script of `master`, its TTL left out with
        /// `ttlPending`; `run` starts a run of that many writes of `op`'s letter.
        mutating func add(_ op: CacheOp, index: Int, slot: Int, to master: Int, run: (letter: String, count: Int)?,
                          ttlPending: Bool) {
            noteFirst(slot, of: master)
            indices[master].append(index)
            if let run {
                laidOut[master].append(run.letter)
                laidOut[master].append(number: run.count)
            }
            Write.appendArguments(op, to: &laidOut[master], ttlPending: ttlPending)
            if ttlPending { ttlWrites[master].append(index) }
        }

        /// Adds `write` (write `index`, in `slot`) to the script of `master`: after the ops, or, `carried`, before.
        mutating func add(_ write: Write, index: Int, slot: Int, to master: Int, carried: Bool) {
            noteFirst(slot, of: master)
            if carried {
                carriedIndices[master].append(index)
                write.append(to: &carriedLaidOut[master])
            } else {
                indices[master].append(index)
                write.append(to: &laidOut[master])
            }
        }

        /// Notes `master` in the order, and `slot` as the one whose fence it checks, if it has no write yet.
        private mutating func noteFirst(_ slot: Int, of master: Int) {
            if indices[master].isEmpty && carriedIndices[master].isEmpty {
                order.append(master)
                fenceSlots[master] = slot
            }
        }
    }

    init(cluster: RedisCluster, keys: SyncKeys) {
        self.cluster = cluster
        self.keys = keys
    }

    /// Applies `ops` in every slot, then the checkpoint change and the counters. Throws `FencedWriteError` when a
    /// slot's fence is above this instance's epoch, `RedisError` when Redis fails (the checkpoint then stays).
    func apply(_ ops: [CacheOp], checkpoint: BatchApplier.CheckpointChange, events: Int,
               warmup: BatchApplier.WarmupChange = .keep, fence: String?) throws {
        try send(plan(ops, checkpoint: checkpoint, events: events, warmup: warmup), fence: fence)
        try awaitSent()
    }

    /// The writes of `ops` and of the checkpoint change and counters after them, laid out per master by the slot
    /// map of the moment (a master that no longer serves a slot by the time they are sent answers `MOVED`, and
    /// `awaitSent` sends that part again slot by slot). The TTLs of the ops at `ttlsPending` (ascending) are left
    /// out, for `Plan.withTTLs(of:)` to give once known, so that a batch whose TTLs follow access counters is laid
    /// out while the batch before it still runs.
    func plan(_ ops: [CacheOp], checkpoint: BatchApplier.CheckpointChange, events: Int,
              warmup: BatchApplier.WarmupChange = .keep, ttlsPending: [Int] = []) -> Plan {
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
        return Plan(ops: ops, last: last, routing: try? route(Writes(ops: ops), ttlsPending: ttlsPending),
                    ttlsPending: !ttlsPending.isEmpty)
    }

    /// `writes` laid out per master, the TTLs of the ops at `ttlsPending` (ascending) left out.
    private func route(_ writes: Writes, ttlsPending: [Int] = []) throws(RedisError) -> Routing {
        // The writes (those of the ops that write something, then the others) and their slots.
        var routed: [Int] = [], slots: [Int] = []
        routed.reserveCapacity(writes.count)
        slots.reserveCapacity(writes.count)
        for index in writes.ops.indices {
            guard let key = Write.key(of: writes.ops[index]) else { continue }
            routed.append(index)
            slots.append(RedisSlot.of(key))
        }
        for (offset, write) in writes.more.enumerated() {
            routed.append(writes.ops.count + offset)
            slots.append(RedisSlot.of(write.key))
        }
        let (masters, owners) = try cluster.masterIndices(ofSlots: slots)
        // The ops' runs: consecutive writes of one letter to one master (noted at the first of each).
        var runs = [(letter: String, count: Int)?](repeating: nil, count: routed.count)
        var openRun = [Int?](repeating: nil, count: masters.count)
        for (position, index) in routed.enumerated() where index < writes.ops.count {
            let letter = Write.letter(of: writes.ops[index])!, master = owners[position]
            if let start = openRun[master], runs[start]!.letter == letter {
                runs[start]!.count += 1
            } else {
                runs[position] = (letter, 1)
                openRun[master] = position
            }
        }
        var routing = Routing(masters: masters)
        var nextPending = ttlsPending.makeIterator(), pending = nextPending.next()
        for (position, index) in routed.enumerated() {
            if index < writes.ops.count {
                while let op = pending, op < index { pending = nextPending.next() }
                routing.add(writes.ops[index], index: index, slot: slots[position], to: owners[position],
                            run: runs[position], ttlPending: index == pending)
            } else {
                routing.add(writes.more[index - writes.ops.count], index: index, slot: slots[position],
                            to: owners[position], carried: false)
            }
        }
        return routing
    }

    /// `apply` up to sending a planned batch to its masters, without waiting for them: `awaitSent()` takes the
    /// outcome and writes the checkpoint. A batch still in flight is finished first, and its checkpoint's writes go
    /// first in this batch's script on their master (they only follow writes every master acknowledged). A fence
    /// raised for a new epoch is raised here, waiting.
    func send(_ plan: Plan, fence: String?) throws {
        precondition(!plan.ttlsPending, "a plan's TTLs are given before it is sent")
        try awaitSent(carryingCheckpoint: true)
        let epoch = try self.epoch(fence)
        if let carried, carried.epoch != epoch { try writeCarried() }
        var writes = Writes(ops: plan.ops)
        var routing = try plan.routing ?? route(writes)
        if let carried {
            // Dropped if this batch is not sent: the stream then applies the batch before again after a restart.
            self.carried = nil
            for write in carried.writes {
                let slot = RedisSlot.of(write.key)
                let (masters, owners) = try cluster.masterIndices(ofSlots: [slot])
                let master = routing.index(of: masters[owners[0]])
                routing.add(write, index: writes.count, slot: slot, to: master, carried: true)
                writes.more.append(write)
            }
        }
        inFlight = InFlight(writes: writes, parts: try sendParts(routing, epoch: epoch, replicated: true), epoch: epoch,
                            last: plan.last)
    }

    /// Waits for the batch `send` wrote, if any, then writes its checkpoint; throws what `apply` would have thrown.
    /// With `carryingCheckpoint`, the checkpoint's writes are held for the next `send` instead.
    func awaitSent(carryingCheckpoint: Bool = false) throws {
        if let batch = inFlight {
            inFlight = nil
            try finish(batch.parts, of: batch.writes, epoch: batch.epoch, replicated: true)
            if !batch.last.isEmpty { carried = (batch.last, batch.epoch) }
        }
        if !carryingCheckpoint { try writeCarried() }
    }

    /// Writes the checkpoint's writes held for the next batch, if any, and waits for them.
    private func writeCarried() throws {
        guard let carried else { return }
        self.carried = nil
        try run(carried.writes, epoch: carried.epoch, replicated: false)
    }

    /// Forgets the batch `send` wrote without its checkpoint (after a failure elsewhere): its replies are read and
    /// dropped. A checkpoint held for the next batch is dropped too (after a restart the stream applies its batch
    /// again).
    func abandonSent() {
        carried = nil
        guard let batch = inFlight else { return }
        inFlight = nil
        for part in batch.parts { _ = try? cluster.awaitSent(part.sent) }
    }

    /// The epoch of the lease value `fence` (`<instanceId>|<epoch>`), '' when unfenced; the first time an epoch is
    /// seen, every slot's fence is raised to it (slot by slot: once per new leader).
    private func epoch(_ fence: String?) throws -> String {
        guard let fence else { return "" }
        let epoch = fence.split(separator: "|").last.map(String.init) ?? ""
        guard epoch != raisedEpoch else { return epoch }
        let everySlot = (0..<RedisSlot.count).map { slot in
            Self.script.evalshaCommand(keys: [Array(fenceKeys[slot].utf8)],
                                       arguments: [Array(keys.namespace.utf8), Array(epoch.utf8)])
        }
        try check(try sendSlotScripts(everySlot, replicated: true))
        raisedEpoch = epoch
        return epoch
    }

    /// Runs `writes` (`sendParts`, then `finish`).
    private func run(_ writes: [Write], epoch: String, replicated: Bool) throws {
        guard !writes.isEmpty else { return }
        let all = Writes(more: writes)
        try finish(try sendParts(route(all), epoch: epoch, replicated: replicated), of: all, epoch: epoch,
                   replicated: replicated)
    }

    /// Sends the writes of `routing` as one script per master, in the order the masters first appear, without
    /// waiting: every master works on its part at once. With `replicated`, a master with replicas also waits until
    /// one has them.
    private func sendParts(_ routing: Routing, epoch: String, replicated: Bool) throws -> [Part] {
        var parts: [Part] = []
        do {
            for master in routing.order {
                let head = [Self.script.sha1, "1", fenceKeys[routing.fenceSlots[master]], keys.namespace, epoch]
                let laidOut = [routing.carriedLaidOut[master], routing.laidOut[master]]
                var command = RedisCommandBatch()
                command.append(["EVALSHA"] + head, lists: laidOut)
                let sent = try cluster.sendAhead(command, to: routing.masters[master], replicated: replicated)
                parts.append(Part(sent: sent, indices: routing.carriedIndices[master] + routing.indices[master],
                                  head: head, laidOut: laidOut))
            }
        } catch {
            for part in parts { _ = try? cluster.awaitSent(part.sent) }
            throw error
        }
        return parts
    }

    /// Takes every part's reply (all of them, also after a failure); a part whose master did not know the script
    /// goes again as `EVAL`, one that was misrouted again slot by slot. Throws the first failure.
    private func finish(_ parts: [Part], of writes: Writes, epoch: String, replicated: Bool) throws {
        var replies: [RedisReply] = []
        var failure: (any Error)?
        for part in parts {
            do {
                replies.append(try cluster.awaitSent(part.sent)[0])
            } catch {
                failure = failure ?? error
                replies.append(.null)
            }
        }
        if let failure { throw failure }
        for (part, first) in zip(parts, replies) {
            var reply = first
            if reply.text?.hasPrefix("NOSCRIPT") == true {
                var again = RedisCommandBatch()
                again.append(["EVAL", Self.script.source] + part.head.dropFirst(), lists: part.laidOut)
                reply = try cluster.send(again, to: part.sent.node, replicated: replicated)[0]
            }
            if cluster.isMisrouted(reply) {
                try check(try sendSlotScripts(slotCommands(part.indices.map { writes[$0] }, epoch: epoch), replicated: replicated))
            } else {
                try check([reply])
            }
        }
    }

    /// The values of `keys` (nil where missing): one pipeline of `GET`s per master, every master's written before
    /// any reply is read; a `GET` that was misrouted is sent again through `RedisCluster.command`, which follows
    /// redirections. A batch in flight must have been finished first (`awaitSent`): a master's connection carries one
    /// pipeline at a time.
    func read(_ keys: [String]) throws(RedisError) -> [RedisReply] {
        try read(keys.count, slots: keys.map(RedisSlot.of), name: { keys[$0] }) { batch, index in
            batch.append("GET", keys[index])
        }
    }

    /// `read` of the derived keys (`CacheKey.derivedKey(suffix)`) of `keys`, each in its key's slot, whose names are
    /// written into the command without being made as strings when they are `{<key>}<suffix>`.
    func read(derived suffix: String, of keys: [CacheKey]) throws(RedisError) -> [RedisReply] {
        try read(keys.count, slots: keys.map { RedisSlot.of($0.text) }, name: { keys[$0].derivedKey(suffix) }) { batch, index in
            if keys[index].derivedKeyWrapsText {
                batch.append("GET", braced: keys[index].text, suffix: suffix)
            } else {
                batch.append("GET", keys[index].derivedKey(suffix))
            }
        }
    }

    /// `read` of `count` keys in `slots`: `appendGet` lays out the `GET` of one, `name` gives its name for a resend.
    private func read(_ count: Int, slots: [Int], name: (Int) -> String,
                      appendGet: (inout RedisCommandBatch, Int) -> Void) throws(RedisError) -> [RedisReply] {
        guard inFlight == nil else {
            throw RedisError(kind: .invalidCommand, endpoint: "cluster", message: "a batch is in flight: its outcome is taken before a read")
        }
        let (masters, owners) = try cluster.masterIndices(ofSlots: slots)
        var byMaster = [[Int]](repeating: [], count: masters.count)
        for index in 0..<count { byMaster[owners[index]].append(index) }
        var sent: [(indices: [Int], part: RedisCluster.SentPart)] = []
        var failure: RedisError?
        for (master, indices) in zip(masters, byMaster) where !indices.isEmpty {
            var batch = RedisCommandBatch()
            for index in indices { appendGet(&batch, index) }
            do {
                sent.append((indices, try cluster.sendAhead(batch, to: master, replicated: false)))
            } catch {
                failure = error
                break
            }
        }
        var replies = [RedisReply](repeating: .null, count: count)
        for (indices, part) in sent {
            // Every part's replies are taken, also after a failure.
            do {
                for (index, reply) in zip(indices, try cluster.awaitSent(part)) { replies[index] = reply }
            } catch {
                failure = failure ?? error
            }
        }
        if let failure { throw failure }
        for index in replies.indices where cluster.isMisrouted(replies[index]) {
            replies[index] = try cluster.command(["GET", name(index)])
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
            bySlot[slot]!.keys += write.keys.map { Array($0.utf8) }
            write.append(to: &bySlot[slot]!.arguments)
        }
        return order.map { Self.script.evalshaCommand(keys: bySlot[$0]!.keys, arguments: bySlot[$0]!.arguments) }
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
        [Array("EVAL".utf8), Array(script.source.utf8)] + evalsha.dropFirst(2)
    }

    /// Throws the first error reply, or `FencedWriteError` when a slot refused the epoch.
    private func check(_ replies: [RedisReply]) throws {
        try cluster.throwFirstError(in: replies)
        if replies.contains(.integer(-1)) { throw FencedWriteError(leaseKey: keys.leader) }
    }
}

/// Where `ClusterBatchWriter.Write` lays out its arguments: a script's arguments in the protocol (a master's part),
/// or as byte arrays (a slot's part, sent through `RedisCluster.pipeline`).
protocol ScriptArguments {
    mutating func append(_ text: String)
    mutating func append(number: Int)
    mutating func appendPendingNumber()
}

extension RedisArgumentList: ScriptArguments {}

extension [[UInt8]]: ScriptArguments {
    mutating func append(_ text: String) { append([UInt8](text.utf8)) }
    mutating func append(number: Int) { append([UInt8](String(number).utf8)) }
    mutating func appendPendingNumber() { preconditionFailure("a slot script's arguments are laid out whole") }
}
