@testable import CacheSync
import Foundation
import Testing

/// The `/v1/stats` body that `StatsReport` builds from a telemetry snapshot.
@Suite("StatsReport: the /v1/stats body from telemetry")
struct StatsReportTests {
    /// Figures of a collection this instance leads, with its stream open.
    static func leading(hits: Int = 0, misses: Int = 0, lag: Double = 0, streamOpen: Bool = true) -> Telemetry.CollectionStats {
        var stats = Telemetry.CollectionStats()
        stats.hits = hits
        stats.misses = misses
        stats.lagSeconds = lag
        stats.leaderUntil = .infinity
        stats.streamOpen = streamOpen
        return stats
    }

    /// Figures of a collection another instance leads (this one's stream is closed).
    static var standby: Telemetry.CollectionStats {
        var stats = Telemetry.CollectionStats()
        stats.leaderUntil = 0
        return stats
    }

    @Test("each collection's entry carries its own figures")
    func perCollection() {
        var products = Self.leading(hits: 3, misses: 1, lag: 0.25)
        products.invalidations = 7
        products.updates = 11
        products.events = 19
        products.errors = 2
        products.skips = 5
        let report = StatsReport(["shop.products": products, "shop.users": Self.standby])
        #expect(report.collections.keys.sorted() == ["shop.products", "shop.users"])
        let entry = report.collections["shop.products"]
        #expect(entry?.hits == 3 && entry?.misses == 1 && entry?.hitRate == 0.75)
        #expect(entry?.invalidations == 7 && entry?.updates == 11 && entry?.events == 19 && entry?.errors == 2)
        #expect(entry?.lagSeconds == 0.25)
        #expect(entry?.leader == true && entry?.streamOpen == true)
        let users = report.collections["shop.users"]
        #expect(users?.leader == false && users?.streamOpen == false && users?.hitRate == 0)
    }

    @Test("totals add the counts, take the largest lag, and compute the hit rate from the added reads, not from the rates")
    func totals() {
        var products = Self.leading(hits: 9, misses: 1, lag: 0.5)
        products.events = 100
        products.updates = 60
        products.invalidations = 30
        products.errors = 1
        var users = Self.leading(hits: 0, misses: 2, lag: 2.5)
        users.events = 20
        users.updates = 5
        users.invalidations = 4
        users.errors = 3
        let totals = StatsReport(["shop.products": products, "shop.users": users]).totals
        #expect(totals.hits == 9 && totals.misses == 3)
        #expect(totals.hitRate == 0.75, "9 hits of 12 reads (the mean of the rates would be 0.45)")
        #expect(totals.events == 120 && totals.updates == 65 && totals.invalidations == 34 && totals.errors == 4)
        #expect(totals.lagSeconds == 2.5)
    }

    @Test("in the totals: leader if any collection is led here; streams open unless a led collection's stream is closed")
    func leadershipAndStreams() {
        let mixed = StatsReport(["a.x": Self.leading(), "a.y": Self.standby]).totals
        #expect(mixed.leader && mixed.streamOpen, "a standby's closed stream is not a fault")
        let broken = StatsReport(["a.x": Self.leading(streamOpen: false), "a.y": Self.leading()]).totals
        #expect(broken.leader && !broken.streamOpen)
        let standbyOnly = StatsReport(["a.y": Self.standby]).totals
        #expect(!standbyOnly.leader && standbyOnly.streamOpen)
    }

    @Test("an empty snapshot reports zeros and a hit rate of 0, not NaN")
    func empty() throws {
        let report = StatsReport([:])
        #expect(report.collections.isEmpty)
        #expect(report.totals.hitRate == 0 && report.totals.hits == 0 && report.totals.lagSeconds == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        #expect((json["totals"] as? [String: Any])?["hitRate"] as? Double == 0)
    }

    @Test("json() has collections and totals, each entry with the ten figures, keys sorted")
    func json() throws {
        let text = StatsReport(["shop.products": Self.leading(hits: 1, misses: 1, lag: 1.5)]).json()
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
        #expect(json.keys.sorted() == ["collections", "totals"])
        let entry = try #require((json["collections"] as? [String: Any])?["shop.products"] as? [String: Any], "\(text)")
        let figures = ["errors", "events", "hitRate", "hits", "invalidations", "lagSeconds", "leader", "misses", "streamOpen", "updates"]
        #expect(entry.keys.sorted() == figures)
        #expect(entry["hitRate"] as? Double == 0.5 && entry["lagSeconds"] as? Double == 1.5 && entry["leader"] as? Bool == true)
        #expect(((json["totals"] as? [String: Any])?.keys.sorted()) == figures)
        // Sorted keys: the figures appear in alphabetical order in the text, collections before totals.
        let positions = figures.compactMap { text.range(of: "\"\($0)\":")?.lowerBound }
        #expect(positions.count == figures.count && positions == positions.sorted(), "\(text)")
        #expect(text.hasPrefix(#"{"collections":{"shop.products":{"errors":"#), "\(text)")
    }
}
