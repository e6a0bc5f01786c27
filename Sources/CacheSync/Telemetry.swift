import Foundation
import Metrics

/// Per-collection figures kept for `/v1/stats` and `/readyz`, and mirrored into swift-metrics for `/metrics`.
public final class Telemetry: @unchecked Sendable {
    /// What one collection has done since start.
    public struct CollectionStats: Sendable, Equatable {
        /// Change events received, of every type.
        public var events = 0
        /// Read-through hits.
        public var hits = 0
        /// Read-through misses.
        public var misses = 0
        /// Keys deleted because of a change.
        public var invalidations = 0
        /// Keys written with a new document.
        public var updates = 0
        /// Events skipped by the collection's `operations`.
        public var skips = 0
        /// Errors, by the kinds of `error(_:kind:)`.
        public var errors = 0
        /// Seconds between the last applied event's time and its application.
        public var lagSeconds = 0.0
        /// Unix time of the last applied event (0: none yet).
        public var lastEventTime = 0.0
        /// Unix time of the last event received or the stream opening, for the silence watchdog.
        public var lastActivityTime = 0.0
        /// Until when (Unix seconds) this instance's lease is valid: 0 when it holds none, infinity without leases.
        public var leaderUntil = 0.0
        /// Whether this instance's change stream on the collection is open.
        public var streamOpen = false
        /// Whether this instance is warming the collection up (`warmup`).
        public var warmingUp = false
        /// Documents the warm-up has still to read, as last counted.
        public var warmupRemaining = 0

        /// Whether this instance applies the collection now: its lease has not run out, even if the watcher thread
        /// is stuck and has not noticed yet, so two instances never both report themselves leader.
        public var leader: Bool { leaderUntil > Date().timeIntervalSince1970 }

        /// `hits / (hits + misses)`, 0 before any read.
        public var hitRate: Double {
            hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses)
        }
    }

    private let lock = NSLock()
    private var stats: [String: CollectionStats] = [:]

    /// Telemetry for the given collections (namespaces `db.coll`).
    ///
    /// Every per-collection series of docs/ARCHITECTURE.md §7 is created at zero here, so `/metrics` lists each collection
    /// from the start (counters for the usual label values; others appear when they first happen).
    public init(collections: [String] = []) {
        register(collections)
        _ = Timer(label: "cachesync_apply_seconds")
        for result in ["applied", "rejected", "unchanged"] {
            Counter(label: "cachesync_config_reloads_total", dimensions: [("result", result)]).increment(by: 0)
        }
    }

    /// Adds collections (at start, or added by a reload): their figures start at zero, and every per-collection
    /// series is created at zero (counters for the usual label values; others appear when they first happen). A
    /// collection already known keeps its figures.
    public func register(_ collections: [String]) {
        let now = Date().timeIntervalSince1970
        for ns in collections {
            let known = lock.withLock {
                if stats[ns] != nil { return true }
                stats[ns] = CollectionStats(lastActivityTime: now)
                return false
            }
            if known { continue }
            let collection = ("collection", ns)
            Gauge(label: "cachesync_leader", dimensions: [collection]).record(0)
            Gauge(label: "cachesync_hit_ratio", dimensions: [collection]).record(0)
            Gauge(label: "cachesync_lag_seconds", dimensions: [collection]).record(0)
            Gauge(label: "cachesync_last_event_timestamp_seconds", dimensions: [collection]).record(0)
            Gauge(label: "cachesync_seconds_since_last_event", dimensions: [collection]).record(0)
            Gauge(label: "cachesync_warmup_remaining", dimensions: [collection]).record(0)
            Counter(label: "cachesync_warmup_documents_total", dimensions: [collection]).increment(by: 0)
            for result in ["hit", "miss"] {
                Counter(label: "cachesync_reads_total", dimensions: [collection, ("result", result)]).increment(by: 0)
            }
            for operation in ["insert", "update", "replace", "delete"] {
                Counter(label: "cachesync_events_total", dimensions: [collection, ("operation", operation)]).increment(by: 0)
            }
            for action in ["set", "delete", "skip"] {
                Counter(label: "cachesync_cache_writes_total", dimensions: [collection, ("action", action)]).increment(by: 0)
            }
            for reason in ["open", "mongodb", "redis", "invalidate", "history_lost"] {
                Counter(label: "cachesync_stream_restarts_total", dimensions: [collection, ("reason", reason)]).increment(by: 0)
            }
            for reason in ["no_checkpoint", "history_lost", "drop"] {
                Counter(label: "cachesync_resyncs_total", dimensions: [collection, ("reason", reason)]).increment(by: 0)
            }
        }
    }

    /// Forgets a collection a reload removed (after its watcher stopped): it leaves `/v1/stats` and `/readyz`, and
    /// its gauges leave `/metrics`; its counters keep their last values until the process restarts (a counter that
    /// vanished and came back would read as a reset).
    public func unregister(_ ns: String) {
        _ = lock.withLock { stats.removeValue(forKey: ns) }
        for gauge in ["cachesync_leader", "cachesync_hit_ratio", "cachesync_lag_seconds",
                      "cachesync_last_event_timestamp_seconds", "cachesync_seconds_since_last_event"] {
            Gauge(label: gauge, dimensions: [("collection", ns)]).destroy()
        }
    }

    /// A config reload ended: `applied`, `rejected` (invalid, or a setting that needs a restart) or `unchanged`.
    public func configReloaded(result: String) {
        Counter(label: "cachesync_config_reloads_total", dimensions: [("result", result)]).increment()
    }

    private func update(_ ns: String, _ body: (inout CollectionStats) -> Void) {
        lock.withLock { body(&stats[ns, default: CollectionStats()]) }
    }

    /// A snapshot of every collection's figures.
    public func snapshot() -> [String: CollectionStats] {
        lock.withLock { stats }
    }

    /// A change event arrived (`operation` is its `operationType`).
    public func eventReceived(_ ns: String, operation: String, count: Int = 1) {
        update(ns) {
            $0.events += count
            $0.lastActivityTime = Date().timeIntervalSince1970
        }
        Counter(label: "cachesync_events_total", dimensions: [("collection", ns), ("operation", operation)]).increment(by: count)
    }

    /// Cache writes of one kind (`set`, `delete`, `skip`) were applied.
    public func cacheWrites(_ ns: String, action: String, count: Int = 1) {
        guard count > 0 else { return }
        update(ns) {
            switch action {
            case "set": $0.updates += count
            case "delete": $0.invalidations += count
            case "skip": $0.skips += count
            default: break
            }
        }
        Counter(label: "cachesync_cache_writes_total", dimensions: [("collection", ns), ("action", action)]).increment(by: count)
    }

    /// A document got no key for one of its collection's secondary keys (`reason`: a field missing, or of a type
    /// without key text).
    public func indexKeySkipped(_ ns: String, reason: String) {
        Counter(label: "cachesync_index_keys_skipped_total", dimensions: [("collection", ns), ("reason", reason)]).increment()
    }

    /// A batch was applied in `seconds` and reached Redis at `appliedAt`; `eventTime` is the last event's time
    /// (Unix seconds), if known.
    public func batchApplied(_ ns: String, seconds: Double, eventTime: Double?, appliedAt: Date = Date()) {
        Timer(label: "cachesync_apply_seconds").recordSeconds(seconds)
        guard let eventTime else { return }
        let lag = max(0, appliedAt.timeIntervalSince1970 - eventTime)
        update(ns) {
            $0.lagSeconds = lag
            $0.lastEventTime = eventTime
        }
        Gauge(label: "cachesync_lag_seconds", dimensions: [("collection", ns)]).record(lag)
        Gauge(label: "cachesync_last_event_timestamp_seconds", dimensions: [("collection", ns)]).record(eventTime)
    }

    /// The change stream was (re)opened after `reason`: `open` (from the stored checkpoint), `invalidate`,
    /// `history_lost`, or the failure that closed it (`mongodb`, `redis`, `auth`, `other`).
    public func streamRestarted(_ ns: String, reason: String) {
        Counter(label: "cachesync_stream_restarts_total", dimensions: [("collection", ns), ("reason", reason)]).increment()
    }

    /// Every key of the collection was removed because of `reason` (`no_checkpoint`, `history_lost`, `drop`,
    /// `rename`, `dropDatabase`).
    public func resynced(_ ns: String, reason: String) {
        Counter(label: "cachesync_resyncs_total", dimensions: [("collection", ns), ("reason", reason)]).increment()
    }

    /// Something went wrong (`kind`: `decode`, `unknown_event`, `apply`, `stream`, …); counted, never silent.
    public func error(_ ns: String, kind: String) {
        update(ns) { $0.errors += 1 }
        Counter(label: "cachesync_errors_total", dimensions: [("collection", ns), ("kind", kind)]).increment()
    }

    /// Whether this instance is warming the collection up.
    public func setWarmingUp(_ ns: String, _ warmingUp: Bool) {
        update(ns) { $0.warmingUp = warmingUp }
        if !warmingUp { warmupRemaining(ns, 0) }
    }

    /// The warm-up has `count` documents still to read.
    public func warmupRemaining(_ ns: String, _ count: Int) {
        update(ns) { $0.warmupRemaining = count }
        Gauge(label: "cachesync_warmup_remaining", dimensions: [("collection", ns)]).record(count)
    }

    /// The warm-up read `count` more documents (written, or left to the stream that wrote them meanwhile).
    public func warmupDocuments(_ ns: String, _ count: Int) {
        Counter(label: "cachesync_warmup_documents_total", dimensions: [("collection", ns)]).increment(by: count)
    }

    /// Whether this instance's stream on the collection is open.
    public func setStreamOpen(_ ns: String, _ open: Bool) {
        update(ns) {
            $0.streamOpen = open
            if open { $0.lastActivityTime = Date().timeIntervalSince1970 }
        }
    }

    /// This instance applies the collection until `until` (Unix seconds; 0: not the leader; infinity: no leases).
    public func setLeader(_ ns: String, until: Double) {
        update(ns) { $0.leaderUntil = until }
        Gauge(label: "cachesync_leader", dimensions: [("collection", ns)]).record(until > Date().timeIntervalSince1970 ? 1 : 0)
    }

    /// Re-records `cachesync_leader` from the lease validity, so a scrape never shows a lease that ran out.
    public func refreshLeaderGauges() {
        for (ns, stats) in snapshot() {
            Gauge(label: "cachesync_leader", dimensions: [("collection", ns)]).record(stats.leader ? 1 : 0)
        }
    }

    /// A read-through miss returned the document without caching it (`too_large`, `lease_busy`, `lease_lost`).
    public func readNotCached(_ ns: String, reason: String) {
        Counter(label: "cachesync_read_uncached_total", dimensions: [("collection", ns), ("reason", reason)]).increment()
    }

    /// The silence watchdog measured `seconds` since the collection's last event (0 where this instance does not apply it).
    public func silence(_ ns: String, seconds: Double) {
        Gauge(label: "cachesync_seconds_since_last_event", dimensions: [("collection", ns)]).record(seconds)
    }

    /// A read-through request was a hit or a miss.
    public func read(_ ns: String, hit: Bool) {
        var ratio = 0.0
        update(ns) {
            if hit { $0.hits += 1 } else { $0.misses += 1 }
            ratio = $0.hitRate
        }
        Counter(label: "cachesync_reads_total", dimensions: [("collection", ns), ("result", hit ? "hit" : "miss")]).increment()
        Gauge(label: "cachesync_hit_ratio", dimensions: [("collection", ns)]).record(ratio)
    }

    /// A Redis Cluster redirected or refused a command: `moved`, `ask`, `tryagain`, `clusterdown`
    /// (`cachesync_redis_redirects_total`, which appears with the first).
    public func redisRedirected(_ kind: String) {
        Counter(label: "cachesync_redis_redirects_total", dimensions: [("kind", kind)]).increment()
    }
}
