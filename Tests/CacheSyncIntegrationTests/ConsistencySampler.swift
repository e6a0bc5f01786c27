import CacheSyncCore
import Foundation
import MongoBridge
import RedisBridge

/// Samples random keys during the run: a cached value is consistent if it equals MongoDB's document now, or
/// becomes equal to it within 1 s (the published cache-consistency measure: consistent within a time bound).
final class ConsistencySampler: @unchecked Sendable {
    private let lock = NSLock()
    private var samples = 0, immediate = 0, withinASecond = 0

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

    var summary: String {
        lock.withLock {
            let share = samples == 0 ? 0 : Double(withinASecond) / Double(samples) * 100
            let first = samples == 0 ? 0 : Double(immediate) / Double(samples) * 100
            return String(format: "consistency: %d cached samples, %.2f%% consistent within 1 s (%.2f%% at once)",
                          samples, share, first)
        }
    }
}
