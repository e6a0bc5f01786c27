import BSONModel
import CacheSyncCore
import Foundation
import Logging
import MongoBridge

/// The keys the stream wrote while a warm-up chunk waited between its read and its write (DBLog's window between
/// the low and the high watermark): the chunk's documents with these keys are left to the stream.
final class WarmupWindow {
    /// The cache keys (`CacheKey.text`) of every op the stream planned in the window.
    var keys = Set<String>()
    /// A flush ran in the window (drop, rename, an event naming no document): the chunk is read again.
    var flushed = false
}

/// Fills one collection's cache from a snapshot of it, merged with its change stream so that no value older than
/// one the stream applied or will apply is written (docs/ARCHITECTURE.md §5 "Warm-up").
///
/// It runs on the watcher's thread, between its batches, at the stream's idle passes: at one it reads a chunk (the
/// low watermark: every event delivered so far is applied), at the next one (the high watermark: the stream has
/// caught up with the server after the read) it writes the chunk's documents but those whose keys the stream wrote
/// in between, in one fenced transaction with the new position. A restart continues from the stored position.
final class CollectionWarmup {
    private let collection: CollectionConfig
    private let settings: WarmupSettings
    private let namespace: MongoNamespace
    private let ns: String
    private let pool: MongoClientPool
    private let keys: CacheKey.Layout
    private let telemetry: Telemetry
    private let logger: Logger

    /// Where the warm-up continues; `nil` when none is under way.
    private(set) var position: WarmupPosition?
    /// The chunk read at the last idle pass, written at the next one.
    private var chunk: Chunk?
    /// The earliest time (`systemUptime`) of the next read: `share` spaces the reads out.
    private var nextReadAt = 0.0
    /// Documents to read when this process took the warm-up up (counted at its first read), and how many were done
    /// then; `nil` until counted.
    private var plan: (total: Int, doneAtStart: Int, started: Double)?
    /// The last tenth of the way logged.
    private var loggedTenth = 0
    /// Documents this process left to the stream, which wrote their keys between a chunk's read and its write.
    private var leftToStream = 0
    /// With `sort`: the picked `_id`s still to warm, in `_id` order (read at the first step after the warm-up began
    /// or resumed); `nil` until read, and always without `sort`.
    private var picked: [BSONValue]?
    /// Test-only: seconds to wait after a chunk's read (debug builds only).
    private let testReadDelay = TestSwitches.current.warmupReadDelay

    private struct Chunk {
        var documents: [[UInt8]]
        var requested: Int
        var window: WarmupWindow
        /// With `sort`: the picked `_id`s this chunk covers (its documents are those of them that still exist); the
        /// last one is the next position.
        var ids: [BSONValue]? = nil
    }

    /// The warm-up of `collection` (whose `warmup` is enabled) reading from `pool`.
    init(collection: CollectionConfig, keys: CacheKey.Layout, pool: MongoClientPool, telemetry: Telemetry, logger: Logger) {
        self.collection = collection
        settings = collection.warmup
        namespace = MongoNamespace(database: collection.database, collection: collection.collection)
        ns = collection.namespace
        self.pool = pool
        self.keys = keys
        self.telemetry = telemetry
        self.logger = logger
    }

    /// Whether a warm-up is under way.
    var isActive: Bool { position != nil }

    /// A warm-up from the start begins: its position was stored with the resync that flushed the collection.
    func began() {
        chunk = nil
        position = .start
        plan = nil
        picked = nil
        loggedTenth = 0
        leftToStream = 0
        telemetry.setWarmingUp(ns, true)
        if settings.sort.isEmpty {
            logger.notice("warm-up started: reading the collection in chunks of \(settings.chunkSize) by _id",
                          metadata: ["share": "\(settings.share)"])
        } else {
            logger.notice("""
                warm-up started: the first \(settings.limit ?? 0) documents by \(sortText), read in chunks of \
                \(settings.chunkSize) by _id
                """, metadata: ["share": "\(settings.share)"])
        }
    }

    /// The stream was opened from a stored checkpoint: continues a warm-up whose position is stored, if any.
    func load(_ pipeline: ChangePipeline) throws {
        chunk = nil
        pipeline.warmupWindow = nil
        let stored = try pipeline.loadWarmupPosition()
        guard let stored else {
            if position != nil { telemetry.setWarmingUp(ns, false) }
            position = nil
            return
        }
        let resumed = position == nil
        position = stored
        plan = nil
        picked = nil
        telemetry.setWarmingUp(ns, true)
        if resumed {
            loggedTenth = 0
            leftToStream = 0
            let after = stored.after.map { ExtendedJSON.relaxed($0) } ?? "the start"
            logger.notice("warm-up resumed after _id \(after): \(stored.done) documents were done",
                          metadata: ["done": "\(stored.done)"])
        }
    }

    /// Forgets the chunk read and not written (the stream closed or failed): the next read starts again from the
    /// stored position.
    func abandonChunk(_ pipeline: ChangePipeline) {
        chunk = nil
        pipeline.warmupWindow = nil
    }

    /// At an idle pass of the stream (everything delivered is applied, nothing in flight): writes the chunk read at
    /// the previous one, then reads the next when `share` allows. Returns whether it did either.
    func step(_ pipeline: ChangePipeline, idleToken: BSONDocument?) throws -> Bool {
        guard let position else { return false }
        var worked = false
        if let chunk {
            self.chunk = nil
            pipeline.warmupWindow = nil
            try write(chunk, from: position, pipeline, idleToken: idleToken)
            worked = true
        }
        guard let position = self.position else { return worked }
        let now = ProcessInfo.processInfo.systemUptime
        guard now >= nextReadAt else { return worked }
        if !settings.sort.isEmpty {
            return try stepSorted(pipeline, position: position, now: now) || worked
        }
        if plan == nil {
            var total = try pool.count(namespace, filter: position.filter)
            if let limit = settings.limit { total = min(total, max(0, limit - position.done)) }
            plan = (total, position.done, now)
            telemetry.warmupRemaining(ns, total)
        }
        var requested = settings.chunkSize
        if let limit = settings.limit { requested = min(requested, max(0, limit - position.done)) }
        // Opened before the read: every op the stream plans from here to the write is in it.
        let window = WarmupWindow()
        let documents: [[UInt8]]
        if requested > 0 {
            pipeline.warmupWindow = window
            // An exclusion is sent to the server (fewer bytes) unless a filter may read the fields; cachesync
            // projects again, as the stream and the read-through API do.
            let serverProjection = collection.filter == nil && collection.projection?.including == false
                ? collection.projection?.document : nil
            // From the last `_id` on in the `_id` index (`min`, inclusive, with `hint`: BSON order across types,
            // and an index range where `$gt` on `_id` is a scan on some servers), one more to drop the last one
            // itself. Majority, as the stream reads: the chunk never holds a write the stream could still lose in
            // a rollback, or deliver after the chunk is written with an older document.
            let bound: BSONDocument? = position.after.map { ["_id": $0] }
            var read = try pool.findBytes(namespace, sort: ["_id": .int32(1)], limit: requested + (bound == nil ? 0 : 1),
                                          projection: serverProjection, readConcern: "majority", min: bound,
                                          hint: bound == nil ? nil : ["_id": .int32(1)])
            if let after = position.after, let first = read.first,
               EncodedBSONDocument(sharing: first, range: first.indices)?["_id"] == after {
                read.removeFirst()
            }
            documents = Array(read.prefix(requested))
        } else {
            documents = []
        }
        let took = ProcessInfo.processInfo.systemUptime - now
        if testReadDelay > 0 { Thread.sleep(forTimeInterval: testReadDelay) }
        nextReadAt = now + took / settings.share
        chunk = Chunk(documents: documents, requested: requested, window: window)
        return true
    }

    /// `sort: { updatedAt: -1 }` in the config, for the log.
    private var sortText: String {
        "{ " + settings.sort.map { "\($0.path): \($0.direction)" }.joined(separator: ", ") + " }"
    }

    /// A step with `sort`: picks the `limit` first documents by `sort` (once per start or resume), orders their
    /// `_id`s by the server's `_id` order, and reads the next chunk of them with `$in`. The position is still the
    /// last `_id` written, so a restart picks again and continues with the picked `_id`s above it.
    private func stepSorted(_ pipeline: ChangePipeline, position: WarmupPosition, now: Double) throws -> Bool {
        if picked == nil {
            picked = try pick(after: position.after)
            plan = (picked?.count ?? 0, position.done, now)
            telemetry.warmupRemaining(ns, picked?.count ?? 0)
        }
        let ids = Array((picked ?? []).prefix(settings.chunkSize))
        let window = WarmupWindow()
        var documents: [[UInt8]] = []
        if !ids.isEmpty {
            pipeline.warmupWindow = window
            let serverProjection = collection.filter == nil && collection.projection?.including == false
                ? collection.projection?.document : nil
            // Majority, as the stream reads (see `step`). Sorted by `_id` only to keep the log and tests steady:
            // the chunk's order does not matter for its write.
            documents = try pool.findBytes(namespace, filter: ["_id": .document(["$in": .array(ids)])],
                                           sort: ["_id": .int32(1)], projection: serverProjection,
                                           readConcern: "majority")
        }
        let took = ProcessInfo.processInfo.systemUptime - now
        if testReadDelay > 0 { Thread.sleep(forTimeInterval: testReadDelay) }
        nextReadAt = now + took / settings.share
        chunk = Chunk(documents: documents, requested: ids.count, window: window, ids: ids)
        return true
    }

    /// The `_id`s of the first `limit` documents by `sort` (ties by `_id`), minus the `done` already warmed before a
    /// restart, those above `after` in `_id` order. Documents that entered the first `limit` since the warm-up
    /// began and sort below `after` are not warmed: the stream caches them when they change.
    private func pick(after: BSONValue?) throws -> [BSONValue] {
        guard let limit = settings.limit else { return [] }
        var sort = BSONDocument()
        for key in settings.sort { sort[key.path] = .int32(Int32(key.direction)) }
        if sort["_id"] == nil { sort["_id"] = .int32(1) }
        let top = try pool.findBytes(namespace, sort: sort, limit: limit, projection: ["_id": .int32(1)],
                                     readConcern: "majority")
        let ids = top.compactMap { EncodedBSONDocument(sharing: $0, range: $0.indices)?["_id"] }
        guard !ids.isEmpty else { return [] }
        // The server orders them by `_id` (BSON order across types). After a restart, `$gt` the last `_id` written
        // (which compares within its BSON type: with mixed `_id` types, picked ones of other types are left to the
        // stream after a restart).
        var condition: BSONDocument = ["$in": .array(ids)]
        if let after { condition["$gt"] = after }
        let ordered = try pool.findBytes(namespace, filter: ["_id": .document(condition)], sort: ["_id": .int32(1)],
                                         projection: ["_id": .int32(1)], readConcern: "majority")
        return ordered.compactMap { EncodedBSONDocument(sharing: $0, range: $0.indices)?["_id"] }
    }

    /// Writes a chunk's documents but those the stream wrote since its read, with the next position (or the end).
    private func write(_ chunk: Chunk, from position: WarmupPosition, _ pipeline: ChangePipeline,
                       idleToken: BSONDocument?) throws {
        if chunk.window.flushed {
            // The collection's keys were flushed after the read: read the chunk again.
            return
        }
        var ops: [CacheOp] = []
        ops.reserveCapacity(chunk.documents.count)
        // The document of each op (one op at most per document), for its secondary keys.
        var written: [EncodedBSONDocument] = []
        var last = position.after
        for bytes in chunk.documents {
            guard let document = EncodedBSONDocument(sharing: bytes, range: bytes.indices),
                  let id = document["_id"] else { continue }
            last = id
            let planned = ops.count
            Strategy.planSnapshot(document: document, collection: collection, keys: keys, into: &ops)
            if planned < ops.count, let key = ops[planned].key, chunk.window.keys.contains(key.text) {
                // The stream wrote this key after the read: its value is as new as the read's, or newer.
                ops.removeLast(ops.count - planned)
                leftToStream += 1
            }
            if ops.count > planned { written.append(document) }
        }
        let next: WarmupPosition
        let finished: Bool
        if let ids = chunk.ids {
            // With `sort`: the chunk covers its picked ids, found or deleted since they were picked.
            next = WarmupPosition(after: ids.last ?? position.after, done: position.done + ids.count)
            let left = Array((picked ?? []).dropFirst(ids.count))
            picked = left
            finished = left.isEmpty
        } else {
            next = WarmupPosition(after: last, done: position.done + chunk.documents.count)
            finished = chunk.documents.count < chunk.requested
                || settings.limit.map { next.done >= $0 } ?? false
        }
        try pipeline.applyWarmup(ops, documents: written, position: finished ? .delete : .set(next.storedText), idleToken: idleToken)
        self.position = finished ? nil : next
        telemetry.warmupDocuments(ns, chunk.ids?.count ?? chunk.documents.count)
        report(next, finished: finished)
    }

    /// Metrics and the log line per tenth of the way (rate and time left), and the end.
    private func report(_ position: WarmupPosition, finished: Bool) {
        let now = ProcessInfo.processInfo.systemUptime
        guard let plan else { return }
        let doneHere = position.done - plan.doneAtStart
        let remaining = finished ? 0 : max(0, plan.total - doneHere)
        telemetry.warmupRemaining(ns, remaining)
        let elapsed = max(now - plan.started, 0.001)
        let rate = Double(doneHere) / elapsed
        if finished {
            telemetry.setWarmingUp(ns, false)
            logger.notice("""
                warm-up finished: \(position.done) documents, \(doneHere) of them in \(String(format: "%.1f", elapsed)) s \
                (\(Int(rate)) documents/s); \(leftToStream) left to the stream, which wrote them meanwhile
                """, metadata: ["done": "\(position.done)", "leftToStream": "\(leftToStream)"])
            return
        }
        guard plan.total > 0 else { return }
        let tenth = min(9, doneHere * 10 / plan.total)
        guard tenth > loggedTenth else { return }
        loggedTenth = tenth
        let left = rate > 0 ? Double(remaining) / rate : 0
        logger.info("""
            warm-up \(tenth * 10)%: \(position.done) documents done, \(remaining) to go, \(Int(rate)) documents/s, \
            about \(Int(left.rounded(.up))) s left
            """, metadata: ["done": "\(position.done)", "remaining": "\(remaining)", "leftToStream": "\(leftToStream)"])
    }
}
