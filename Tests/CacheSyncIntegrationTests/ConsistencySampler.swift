import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge

/// Samples random keys during the run: a cached value is consistent if it equals MongoDB's document now, or
/// becomes equal to it within 1 s (the published cache-consistency measure: consistent within a time bound).
final class ConsistencySampler: @unchecked Sendable {
    private let lock = NSLock()
    private var samples = 0, immediate = 0, withinASecond = 0

    /// Takes one sample: a random id's cached value against MongoDB's current document, waiting up to 1 s for them
    /// to agree; ids not cached (or unreadable during a restart) are not counted.
    func sample(pool: MongoClientPool, redis: RedisConnection, ns: MongoNamespace, key: (Int) -> String, ids: Int) {
        let id = Int.random(in: 0..<ids)
        guard let cached = try? redis.command(["GET", key(id)]), !cached.isNull, let text = cached.text else { return }
        guard let db = try? pool.findOne(ns, id: .int32(Int32(id))).map(ExtendedJSON.relaxed) ?? "gone" else { return }
        var ok = db == text
        let now = ok
        if !ok {
            let deadline = Date().addingTimeInterval(1)
            while !ok, Date() < deadline {
                usleep(50_000)
                let again = (try? redis.command(["GET", key(id)]).text) ?? "gone"
                let current = (try? pool.findOne(ns, id: .int32(Int32(id))).map(ExtendedJSON.relaxed)) ?? "gone"
                ok = again == current
            }
        }
        lock.withLock {
            samples += 1
            if now { immediate += 1 }
            if ok { withinASecond += 1 }
        }
    }

    /// The figures so far: how many cached keys were sampled, and the percentages consistent within 1 s and at once
    /// (both 0 before the first sample).
    var figures: (samples: Int, withinASecond: Double, atOnce: Double) {
        lock.withLock {
            guard samples > 0 else { return (0, 0, 0) }
            return (samples, Double(withinASecond) / Double(samples) * 100, Double(immediate) / Double(samples) * 100)
        }
    }

    /// The figures as the chaos run prints them (BENCHMARKS.md records this line).
    var summary: String {
        let figures = figures
        return String(format: "consistency: %d cached samples, %.2f%% consistent within 1 s (%.2f%% at once)",
                      figures.samples, figures.withinASecond, figures.atOnce)
    }
}
