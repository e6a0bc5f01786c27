import Foundation

/// The body of `GET /v1/stats`: per collection and in total, the figures of docs/ARCHITECTURE.md §7.
struct StatsReport: Encodable {
    /// One collection's (or the total) figures.
    struct Entry: Encodable {
        /// Read-through hits.
        var hits = 0
        /// Read-through misses.
        var misses = 0
        /// `hits / (hits + misses)`, 0 before any read.
        var hitRate = 0.0
        /// Keys deleted because of a change.
        var invalidations = 0
        /// Keys written with a new document.
        var updates = 0
        /// Change events received.
        var events = 0
        /// Errors counted.
        var errors = 0
        /// Seconds between the last applied event and its application.
        var lagSeconds = 0.0
        /// Whether this instance applies the collection now (per collection; in totals: any).
        var leader = false
        /// Whether this instance's change stream is open (per collection; in totals: every stream it should run).
        var streamOpen = false
        /// For a collection with `indexes`, where a document's old secondary keys come from: `preImages` (the change
        /// events' `fullDocumentBeforeChange`) or `record` (`<key>:indexes` in Redis); absent otherwise.
        var indexOldKeysFrom: String?
    }

    /// A Redis Cluster master and the slots it serves.
    struct ClusterMaster: Encodable, Equatable {
        /// `host:port`.
        var node: String
        /// Its slot ranges, e.g. `["0-5460"]`.
        var slots: [String]
    }

    /// On a Redis Cluster, its masters as last seen (absent for one server).
    var redisCluster: [ClusterMaster]?
    /// Figures per namespace `db.coll`.
    var collections: [String: Entry] = [:]
    /// Sums over the collections; `hitRate` from the summed reads, `lagSeconds` the largest lag.
    var totals = Entry()

    /// The report for a telemetry snapshot.
    init(_ snapshot: [String: Telemetry.CollectionStats]) {
        for (ns, stats) in snapshot {
            collections[ns] = Entry(hits: stats.hits, misses: stats.misses, hitRate: stats.hitRate,
                                    invalidations: stats.invalidations, updates: stats.updates, events: stats.events,
                                    errors: stats.errors, lagSeconds: stats.lagSeconds, leader: stats.leader,
                                    streamOpen: stats.streamOpen)
            totals.hits += stats.hits
            totals.misses += stats.misses
            totals.invalidations += stats.invalidations
            totals.updates += stats.updates
            totals.events += stats.events
            totals.errors += stats.errors
            totals.lagSeconds = max(totals.lagSeconds, stats.lagSeconds)
            totals.leader = totals.leader || stats.leader
        }
        totals.streamOpen = !snapshot.values.contains { $0.leader && !$0.streamOpen }
        let reads = totals.hits + totals.misses
        totals.hitRate = reads == 0 ? 0 : Double(totals.hits) / Double(reads)
    }

    /// The report as JSON with sorted keys.
    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }
}
