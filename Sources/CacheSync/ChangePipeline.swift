import BSONModel
import CacheSyncCore
import Foundation
import Logging
import RedisBridge

/// Reads one collection's raw change events in batches, decodes and plans them, and applies each batch to Redis
/// with its checkpoint in one atomic, fenced step: the data path of a `CollectionWatcher`, without the stream
/// and lease handling around it. It owns the collection's checkpoint and the batch in flight: everything that
/// reads or writes them goes through it. Blocking; use it from one thread.
public final class ChangePipeline {
    /// How a batch is gathered.
    public struct Limits: Sendable {
        /// Events per applied batch, at most.
        public var maxBatchEvents = 256
        /// Raw event bytes per applied batch, at most.
        public var maxBatchBytes = 8 << 20
        /// How long a batch may gather events, in seconds.
        public var batchWindow = 0.005

        /// The defaults.
        public init() {}
    }

    /// What one `pump` did.
    public enum Outcome: Equatable, Sendable {
        /// The source had nothing; `waited` is how long the empty read took, in seconds.
        case idle(waited: Double)
        /// A batch of this many events was applied and checkpointed.
        case applied(events: Int)
        /// The stream was invalidated: its `startAfter` checkpoint is stored; open a new stream.
        case reopen
    }

    let collection: CollectionConfig
    let limits: Limits
    /// The lease value batches are fenced with; `nil` writes unfenced.
    public var fence: () -> String? = { nil }
    /// The last resume token checkpointed (or loaded), so an idle stream saves only a newer one.
    private(set) var lastCheckpointToken: BSONDocument?
    private let applier: BatchApplier
    /// Test-only: seconds to wait between reading a batch and applying it (debug builds only).
    private let testApplyDelay = TestSwitches.current.applyDelay
    /// While a warm-up chunk waits between its read and its write: where the keys of every op planned meanwhile go
    /// (and whether a flush ran), so the chunk leaves those documents to the stream.
    var warmupWindow: WarmupWindow?
    /// The batch whose transaction was sent last and whose outcome is not taken yet.
    private var inFlight: InFlight?

    private let ns: String
    private let keys: CacheKey.Layout
    private let telemetry: Telemetry
    private let logger: Logger

    /// A pipeline for `collection` writing through `redis`, unfenced.
    public init(collection: CollectionConfig, config: CacheSyncConfig, redis: any RedisClient, telemetry: Telemetry,
                logger: Logger, limits: Limits = Limits()) {
        self.collection = collection
        ns = collection.namespace
        keys = config.keyLayout(collection)
        applier = BatchApplier(redis: redis, keys: config.syncKeys(collection))
        self.telemetry = telemetry
        self.logger = logger
        self.limits = limits
    }

    /// One event read: decoded, or `nil` when it could not be (skipped, but its token still checkpoints).
    private struct Item {
        var event: ChangeEvent?
        /// The token of an event that could not be decoded, when its `_id` could be read.
        var undecodedToken: BSONDocument?
        /// The event's `fullDocumentBeforeChange`, read only when the secondary keys take their old values from it.
        var preImage: BSONDocument?
        /// An event that could not be decoded: its `documentKey._id` when that could be read (the key is then
        /// deleted), else `nil` (the whole collection is flushed, as nothing tells which key it changed).
        var undecoded: BSONValue??

        /// The resume token, decoded here (a batch checkpoints only its last).
        var token: BSONDocument? { event?.resumeToken ?? undecodedToken }
    }

    /// A sent batch: what to record once Redis confirms it.
    private struct InFlight {
        var token: BSONDocument?
        /// Its operations, for deleting their keys instead when Redis refuses the writes.
        var ops: [CacheOp]
        var writes: TallyByName
        /// Seconds spent planning and writing it; the wait for its outcome is added when it is taken.
        var sendSeconds: Double
        /// When it was written, which is when Redis runs it (the lag is measured to here).
        var sentAt: Date
        var eventTime: Double?
    }

    /// Reads one batch (until it is full, its window ends, the source is empty, or a collection-level event),
    /// then applies it.
    ///
    /// A batch of document events returns `.applied` once its transaction is written: Redis runs it while the
    /// next call reads and decodes the next batch, and its outcome (a failure included) is taken before the next
    /// transaction is sent, when the source has nothing more, or by `finishInFlight()`. Every other outcome
    /// returns with nothing in flight.
    public func pump(_ source: some ChangeEventSource) throws -> Outcome {
        var batch: [Item] = []
        batch.reserveCapacity(min(limits.maxBatchEvents, 1024))
        var bytes = 0
        let started = Date()
        while true {
            let next: [UInt8]?
            do {
                next = try source.nextEventBytes()
            } catch {
                // The events read before the error are valid and in order: apply and checkpoint them first, so
                // the stream reopens after them instead of from an older checkpoint.
                if !batch.isEmpty { _ = try process(batch) }
                try finishInFlight()
                throw error
            }
            guard let eventBytes = next else { break }
            bytes += eventBytes.count
            let item = decode(eventBytes)
            let endsBatch = item.event.map { Self.isCollectionLevel($0.operationType) } ?? false
            batch.append(item)
            if endsBatch { break }
            if batch.count >= limits.maxBatchEvents || bytes >= limits.maxBatchBytes
                || Date().timeIntervalSince(started) >= limits.batchWindow { break }
        }
        if batch.isEmpty {
            try finishInFlight()
            return .idle(waited: Date().timeIntervalSince(started))
        }
        if testApplyDelay > 0 { Thread.sleep(forTimeInterval: testApplyDelay) }
        return try process(batch)
    }

    /// Whether an event of `type` ends a batch: it is applied on its own.
    private static func isCollectionLevel(_ type: ChangeEvent.OperationType) -> Bool {
        switch type {
        case .drop, .rename, .dropDatabase, .invalidate: true
        case .insert, .update, .replace, .delete, .unknown: false
        }
    }

    /// The stored checkpoint, if any; the stream is opened from it, so an idle stream saves only a newer token.
    func loadCheckpoint() throws -> Checkpoint? {
        let checkpoint = try applier.loadCheckpoint()
        if case .resumeAfter(let token)? = checkpoint { lastCheckpointToken = token }
        return checkpoint
    }

    /// The stored warm-up position, if a warm-up is under way.
    func loadWarmupPosition() throws -> WarmupPosition? {
        try applier.loadWarmupPosition().flatMap(WarmupPosition.init(storedText:))
    }

    /// Removes every key matching `pattern` and stores the checkpoint of a stream just opened from now (`position`,
    /// its resume token; none removes the checkpoint) with `warmup`, the warm-up position from the start or none;
    /// returns how many keys were removed.
    func resync(pattern: String, position: BSONDocument?, warmup: BatchApplier.WarmupChange = .delete) throws -> Int {
        try finishInFlight()
        warmupWindow?.flushed = true
        let removed = try flush(pattern: pattern)
        try applier.apply([], checkpoint: position.map { .set(.resumeAfter($0)) } ?? .delete, events: 0, warmup: warmup,
                          fence: fence())
        lastCheckpointToken = position
        return removed
    }

    /// Removes every key matching `pattern` (the collection's keys) and every secondary key of the collection;
    /// returns how many.
    private func flush(pattern: String) throws -> Int {
        var removed = try applier.flush(pattern: pattern, fence: fence())
        for index in collection.indexes {
            removed += try applier.flush(pattern: index.pattern(keyPrefix: keys.keyPrefix, database: collection.database,
                                                                collection: collection.collection), fence: fence())
        }
        return removed
    }

    /// Saves an idle source's newer resume token (`postBatchResumeToken`), so a quiet collection's checkpoint
    /// stays within the server's history.
    func saveIdleCheckpoint(_ source: some ChangeEventSource) throws {
        try finishInFlight()
        guard let token = source.resumeToken, token != lastCheckpointToken else { return }
        do {
            try applier.apply([], checkpoint: .set(.resumeAfter(token)), events: 0, fence: fence())
        } catch let error as RedisError where error.isRefusedWrite {
            return  // Redis takes no writes now (OOM); the next idle pass tries again.
        }
        lastCheckpointToken = token
    }

    /// Decodes what applying one event reads (its `fullDocument` stays encoded); an event that cannot be decoded is
    /// counted and logged, and the key of the document it names is deleted (or the collection flushed).
    private func decode(_ bytes: [UInt8]) -> Item {
        if expectsSplitEvents, let item = reassemble(bytes) { return item }
        return decodeWhole(bytes)
    }

    /// Whether the secondary keys take their old values from the events' pre-images (`preImages` with `indexes`).
    private var readsPreImages: Bool { collection.preImages && !collection.indexes.isEmpty }

    /// The fragments of a split event so far (`$changeStreamSplitLargeEvent`).
    private var fragments: [BSONDocument] = []

    /// `bytes` as a fragment of a split event (it has `splitEvent: {fragment, of}`): `nil` when it is not one. A
    /// fragment before the last is held (an item with no event and no token, so the checkpoint never stops inside
    /// an event: after a restart the event is read again whole); the last gives the event with every fragment's
    /// fields, under the last fragment's resume token.
    private func reassemble(_ bytes: [UInt8]) -> Item? {
        guard bytes.count >= 4, Self.contains(bytes, Self.splitEventKey),
              let document = try? BSONDocument(bsonBytes: bytes),
              case .document(let split)? = document["splitEvent"],
              let fragment = Self.int(split["fragment"]), let count = Self.int(split["of"])
        else { return nil }
        if fragment == 1 { fragments = [] }
        fragments.append(document)
        guard fragment == count, fragments.count == count else { return Item(event: nil) }
        var merged = BSONDocument()
        for part in fragments {
            for field in part.fields where field.key != "splitEvent" && field.key != "_id" {
                merged.fields.append(field)
            }
        }
        merged.fields.insert((key: "_id", value: document["_id"] ?? .null), at: 0)
        fragments = []
        return decodeWhole(merged.bsonBytes())
    }

    private static func int(_ value: BSONValue?) -> Int? {
        switch value {
        case .int32(let n)?: Int(n)
        case .int64(let n)?: Int(n)
        default: nil
        }
    }

    /// `splitEvent` as a BSON document field's name, as it appears in the bytes.
    private static let splitEventKey: [UInt8] = [0x03] + Array("splitEvent".utf8) + [0]

    private static func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
        guard bytes.count >= needle.count else { return false }
        return (0...(bytes.count - needle.count)).contains { start in
            bytes[start] == needle[0] && bytes[start..<start + needle.count].elementsEqual(needle)
        }
    }

    /// Whether the stream may carry split events (it was opened with `$changeStreamSplitLargeEvent`): only then
    /// is an event looked at for `splitEvent`.
    var expectsSplitEvents = false

    private func decodeWhole(_ bytes: [UInt8]) -> Item {
        do {
            let event = try ChangeEvent(bsonBytes: bytes, decoding: .forApplying)
            var item = Item(event: event)
            if readsPreImages,
               case .document(let before)? = EncodedBSONDocument(sharing: bytes, range: bytes.indices)?["fullDocumentBeforeChange"] {
                item.preImage = before
            }
            return item
        } catch {
            telemetry.eventReceived(ns, operation: "undecodable", count: 1)
            telemetry.error(ns, kind: "decode")
            let document = try? BSONDocument(bsonBytes: bytes)
            let token: BSONDocument? = if case .document(let t)? = document?["_id"] { t } else { nil }
            let id: BSONValue? = if case .document(let key)? = document?["documentKey"] { key["_id"] } else { nil }
            // No document content in the log: the error names fields and types only.
            let action = id == nil ? "it names no document, so the collection is flushed"
                : "the key of the document it names is deleted"
            logger.error("an event that cannot be decoded (\(error); \(bytes.count) bytes): \(action)")
            return Item(event: nil, undecodedToken: token, undecoded: .some(id))
        }
    }

    /// Applies the events in order: document events in atomic batches, collection-level events one by one.
    private func process(_ batch: [Item]) throws -> Outcome {
        // Events since the last collection-level event: the next transaction's (undecodable and unknown events
        // included, for their tokens; planning skips them).
        var pendingStart = 0
        var received = TallyByName()
        defer {
            for (operation, count) in received.tallies {
                telemetry.eventReceived(ns, operation: operation, count: count)
            }
        }
        for index in batch.indices {
            if case .some(nil) = batch[index].undecoded {
                // Which document it changed is unknown: every key of the collection goes.
                try applyPending(batch[pendingStart..<index])
                pendingStart = index + 1
                try finishInFlight()
                try flushForUndecodable(token: batch[index].undecodedToken)
                continue
            }
            guard let type = batch[index].event?.operationType else { continue }
            received.add(type.description)
            switch type {
            case .insert, .update, .replace, .delete:
                continue
            case .unknown(let name):
                logger.notice("ignoring an event of unknown type \(name)")
            case .drop, .rename, .dropDatabase:
                try applyPending(batch[pendingStart..<index])
                pendingStart = index + 1
                try finishInFlight()
                try flushForCollectionEvent(batch[index].event!)
            case .invalidate:
                try applyPending(batch[pendingStart..<index])
                try finishInFlight()
                try applier.apply([], checkpoint: .set(.startAfter(batch[index].event!.resumeToken)), events: 1,
                                  fence: fence())
                lastCheckpointToken = nil
                return .reopen
            }
        }
        try applyPending(batch[pendingStart...])
        return .applied(events: batch.count)
    }

    /// Drop, rename or dropDatabase: every key of the collection goes, then the stream continues (the server
    /// follows with an `invalidate`, which reopens it).
    private func flushForCollectionEvent(_ event: ChangeEvent) throws {
        warmupWindow?.flushed = true
        let ops = Strategy.plan(event: event, collection: collection, keys: keys, accessCount: 0)
        var removed = 0
        for case .flushCollection(_, let pattern, let reason) in ops {
            removed += try flush(pattern: pattern)
            telemetry.resynced(ns, reason: reason.rawValue)
        }
        try applier.apply([], checkpoint: .set(.resumeAfter(event.resumeToken)), events: 1, fence: fence())
        lastCheckpointToken = event.resumeToken
        logger.warning("collection \(ns): \(event.operationType) event; flushed \(removed) keys")
    }

    /// An event that could not be decoded and names no document: the collection's keys are flushed, then its
    /// token (when readable) is the checkpoint.
    private func flushForUndecodable(token: BSONDocument?) throws {
        warmupWindow?.flushed = true
        let pattern = CacheKey.collectionPattern(collection: collection, keyPrefix: keys.keyPrefix)
        let removed = try flush(pattern: pattern)
        telemetry.resynced(ns, reason: "undecodable_event")
        if let token {
            try applier.apply([], checkpoint: .set(.resumeAfter(token)), events: 1, fence: fence())
            lastCheckpointToken = token
        }
        logger.error("collection \(ns): an event that cannot be decoded names no document; flushed \(removed) keys")
    }

    /// Plans and applies the pending document events with the last one's token, in one transaction. Events
    /// without a decoded document operation (undecodable, unknown type) only carry their token.
    ///
    /// The events are planned (the documents' JSON above all) and their commands laid out while Redis still runs
    /// the batch in flight; on one server, the commands of a batch whose TTLs follow the access counters are laid
    /// out once the counters are read, which Redis does after the batch in flight (a cluster lays them out before,
    /// leaving the TTLs to be given).
    private func applyPending(_ pending: ArraySlice<Item>) throws {
        guard !pending.isEmpty else { return }
        let started = Date()
        var ops: [CacheOp] = []
        ops.reserveCapacity(pending.count)
        // The ops whose TTL follows their key's access counter, and their keys, in the same order.
        var countedOps: [Int] = []
        var countedKeys: [CacheKey] = []
        var eventTime: Double?
        // The secondary keys' part of each document event: the index of its primary op, and the change.
        var indexed: [(op: Int, change: IndexPlanner.Change)] = []
        for item in pending {
            if case .some(.some(let id)) = item.undecoded {
                // Whatever it did to this document, the cached copy may be stale now: delete it.
                ops.append(.delete(key: keys.key(id: id), reason: .changed))
                continue
            }
            guard let event = item.event, event.operationType.documentOperation != nil else { continue }
            let planned = ops.count
            Strategy.plan(event: event, collection: collection, keys: keys, accessCount: 0, into: &ops)
            if ops.count == planned, event.documentID == nil {
                telemetry.error(ns, kind: "no_document_key")
                logger.error("skipping a \(event.operationType) event without documentKey._id")
            }
            if !collection.indexes.isEmpty, ops.count > planned,
               let change = indexChange(event, preImage: item.preImage, ops[planned]) {
                indexed.append((planned, change))
            }
            for index in planned..<ops.count where Strategy.ttlFollowsAccessCount(ops[index], collection: collection) {
                if let key = ops[index].key {
                    countedOps.append(index)
                    countedKeys.append(key)
                }
            }
            eventTime = event.eventTimeSeconds
        }
        if let warmupWindow {
            for op in ops {
                if let key = op.key { warmupWindow.keys.insert(key.text) }
            }
        }
        let token = pending.reversed().lazy.compactMap(\.token).first
        let change: BatchApplier.CheckpointChange = token.map { .set(.resumeAfter($0)) } ?? .keep
        var writes = TallyByName()
        for index in ops.indices {
            writes.add(ops[index].metricAction)
            switch ops[index] {
            case .delete(_, .tooLarge): telemetry.error(ns, kind: "too_large")
            case .delete(let key, .invalidDocument):
                telemetry.error(ns, kind: "invalid_document")
                logger.error("deleting \(key): the event's fullDocument is not a valid BSON document")
            default: break
            }
        }
        // Laid out now, while Redis runs the batch in flight; on a cluster also when TTLs follow counters not read
        // yet (they are given once read).
        let laidOut = indexed.isEmpty && (countedOps.isEmpty || applier.isCluster)
            ? applier.prepare(ops, checkpoint: change, events: pending.count, ttlsPending: countedOps) : nil
        let planning = Date().timeIntervalSince(started)
        var waitedForCounts = 0.0
        if !countedOps.isEmpty || !indexed.isEmpty {
            // On one server, read behind the batch in flight: Redis runs the `MGET`s after its `EXEC`, in one round
            // trip with it. On a cluster, that batch is done first (a part of it that met a moved slot is only sent
            // again, slot by slot, when its outcome is taken, and the records it writes are read here), then every
            // master's keys are read at once.
            if applier.isCluster { try finishInFlight(waitedAlready: 0, beforeNextSend: true) }
            let reading = Date()
            do {
                let counts = try applier.accessCounts(of: countedKeys)
                for (index, count) in zip(countedOps, counts) {
                    ops[index] = Strategy.withAccessCount(count, ops[index], collection: collection)
                }
                if !indexed.isEmpty {
                    let indexOps = try planIndexes(indexed, ops: ops)
                    for op in indexOps { writes.add(op.metricAction) }
                    ops += indexOps
                }
            } catch {
                try finishInFlight()
                throw error
            }
            waitedForCounts = Date().timeIntervalSince(reading)
        }
        try finishInFlight(waitedAlready: waitedForCounts, beforeNextSend: true)
        let sending = Date()
        let prepared = laidOut.map { applier.withTTLs(of: ops, $0) }
            ?? applier.prepare(ops, checkpoint: change, events: pending.count)
        if try applier.send(prepared, fence: fence()) {
            let sentAt = Date()
            inFlight = InFlight(token: token, ops: ops, writes: writes, sendSeconds: planning + sentAt.timeIntervalSince(sending),
                                sentAt: sentAt, eventTime: eventTime)
        }
    }

    /// The secondary keys' part of a document event whose primary op is `op` (`IndexPlanner.change`), counting
    /// the keys a document could not have and the pre-images missing.
    private func indexChange(_ event: ChangeEvent, preImage: BSONDocument?, _ op: CacheOp) -> IndexPlanner.Change? {
        let planned = IndexPlanner.change(for: event, preImage: preImage, primary: op, collection: collection,
                                          keyPrefix: keys.keyPrefix)
        for reason in planned.skipped { telemetry.indexKeySkipped(ns, reason: reason.rawValue) }
        if planned.preImageMissing { telemetry.error(ns, kind: "index_preimage_missing") }
        return planned.change
    }

    /// The secondary-key ops of a batch whose primary ops are `ops` (their TTLs final): reads the documents' records
    /// and the old keys they drop (behind the batch in flight), then plans.
    private func planIndexes(_ indexed: [(op: Int, change: IndexPlanner.Change)], ops: [CacheOp]) throws -> [CacheOp] {
        let changes = indexed.map { item -> IndexPlanner.Change in
            var change = item.change
            change.ttlSeconds = IndexPlanner.ttl(following: ops[item.op], collection: collection)
            return change
        }
        let planner = IndexPlanner(changes: changes, keepsRecords: !collection.preImages,
                                   recordsNameDropped: applier.isCluster)
        let records = try applier.read(planner.recordsToRead)
        let oldKeys = planner.oldKeysToRead(records: records)
        return planner.ops(records: records, oldKeys: oldKeys, oldValues: try applier.read(oldKeys))
    }

    /// Writes a warm-up chunk's ops (sets) with the new warm-up `position`, in one fenced transaction, at an idle
    /// pass: the batch in flight is finished first, and the idle stream's `idleToken` (everything up to it is
    /// applied) is checkpointed with it when newer. TTLs that follow access counts are read first. `documents` are
    /// the ops' documents, in order (one op each), whose secondary keys come along as for an insert.
    func applyWarmup(_ ops: [CacheOp], documents: [EncodedBSONDocument], position: BatchApplier.WarmupChange,
                     idleToken: BSONDocument?) throws {
        try finishInFlight()
        var ops = ops
        let counted = ops.indices.filter { Strategy.ttlFollowsAccessCount(ops[$0], collection: collection) }
        if !counted.isEmpty {
            let counts = try applier.accessCounts(of: counted.compactMap { ops[$0].key })
            for (index, count) in zip(counted, counts) {
                ops[index] = Strategy.withAccessCount(count, ops[index], collection: collection)
            }
        }
        if !collection.indexes.isEmpty {
            var indexed: [(op: Int, change: IndexPlanner.Change)] = []
            for (index, document) in zip(ops.indices, documents) {
                guard let id = document["_id"] else { continue }
                let insert = ChangeEvent(resumeToken: [:], operationType: .insert, documentKey: ["_id": id],
                                         fullDocument: .document(document))
                if let change = indexChange(insert, preImage: nil, ops[index]) { indexed.append((index, change)) }
            }
            ops += try planIndexes(indexed, ops: ops)
        }
        let token = idleToken.flatMap { $0 == lastCheckpointToken ? nil : $0 }
        try applier.apply(ops, checkpoint: token.map { .set(.resumeAfter($0)) } ?? .keep, events: 0, warmup: position,
                          fence: fence())
        if let token { lastCheckpointToken = token }
        var writes = TallyByName()
        for op in ops { writes.add(op.metricAction) }
        for (action, count) in writes.tallies { telemetry.cacheWrites(ns, action: action, count: count) }
    }

    /// Waits for the batch in flight, if any, and records it (checkpoint token, writes, lag); throws its failure.
    ///
    /// Its apply time is what the watcher spent on it — planning, writing, waiting for the outcome — without the
    /// work done on the next batch meanwhile.
    public func finishInFlight() throws {
        try finishInFlight(waitedAlready: 0)
    }

    /// `finishInFlight()` after `waitedAlready` seconds spent in a read sent behind the batch in flight, which
    /// waited for its outcome (and counts as its apply time). With `beforeNextSend` (the next batch is sent at once),
    /// a cluster writes the checkpoint with the next batch (`BatchApplier.awaitSent(beforeNextSend:)`).
    private func finishInFlight(waitedAlready: Double, beforeNextSend: Bool = false) throws {
        guard let batch = inFlight else { return }
        inFlight = nil
        let waiting = Date()
        do {
            try applier.awaitSent(beforeNextSend: beforeNextSend)
        } catch let error as RedisError where error.isRefusedWrite {
            try deleteInstead(batch.ops, refused: error)
            return
        }
        if let token = batch.token { lastCheckpointToken = token }
        for (action, count) in batch.writes.tallies { telemetry.cacheWrites(ns, action: action, count: count) }
        telemetry.batchApplied(ns, seconds: batch.sendSeconds + waitedAlready + Date().timeIntervalSince(waiting),
                               eventTime: batch.eventTime, appliedAt: batch.sentAt)
    }

    /// Redis refused a batch's writes (`OOM` under `maxmemory` with no eviction, `WRONGTYPE`): its keys are
    /// deleted instead (plain `UNLINK`s, which Redis runs under `OOM`), so none is left stale and the stream goes
    /// on; the checkpoint and the counters stay (they are writes too), so after a restart these events are applied
    /// again.
    private func deleteInstead(_ ops: [CacheOp], refused: RedisError) throws {
        let keys = ops.compactMap { op -> CacheKey? in
            switch op {
            case .indexSet(let key, _, _), .indexDelete(let key): CacheKey(text: key)
            default: op.key
            }
        }
        try applier.deleteUnfenced(keys)
        for _ in keys { telemetry.error(ns, kind: "redis_refused") }
        telemetry.cacheWrites(ns, action: "delete", count: keys.count)
        logger.error("""
            redis refused the batch's writes (\(refused.serverCode ?? "error")): deleted its \(keys.count) keys \
            instead, so none is stale; the checkpoint waits until Redis accepts writes again
            """)
    }

    /// Forgets the batch in flight without waiting for it, after a failure: the stream reopens from the stored
    /// checkpoint, which holds whatever Redis did with it.
    func abandonInFlight() {
        guard inFlight != nil else { return }
        inFlight = nil
        applier.abandonSent()
    }
}
