import BSONModel
import Foundation
import Glibc
import MongoBridge
import Testing
import TestSupport

/// Reads events until `count` arrived or `timeout` passed, backing off 50 ms on empty batches.
private func read(_ stream: ChangeStream, count: Int, timeout: TimeInterval = 10) throws -> [BSONDocument] {
    var events: [BSONDocument] = []
    let deadline = Date().addingTimeInterval(timeout)
    while events.count < count, Date() < deadline {
        if let event = try stream.next() { events.append(event) } else { usleep(50_000) }
    }
    return events
}

private func operationTypes(_ events: [BSONDocument]) -> [String] {
    events.map { if case .string(let s)? = $0["operationType"] { s } else { "?" } }
}

/// CPU seconds this thread has used.
private func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

@Suite("Mongo bridge on a real wire server", .serialized)
struct MongoChangeStreamTests {
    @Test("a change stream sees the bridge's own insert, update and delete, and resumes from a saved token without a gap")
    func seesOwnWritesAndResumes() throws {
        try withMongoServer { server in
            let pool = try MongoClientPool(uri: server.uri)
            let ns = MongoNamespace(database: server.database, collection: "events")
            try pool.insertOne(ns, ["_id": .string("setup")])
            var stream: ChangeStream? = try ChangeStream(pool: pool, namespace: ns,
                                                         options: .init(fullDocument: "updateLookup", maxAwaitTimeMS: 100))
            try pool.insertOne(ns, ["_id": .int32(1), "v": .string("a")])
            try pool.updateOne(ns, filter: ["_id": .int32(1)], update: ["$set": .document(["v": .string("b")])])
            try pool.deleteOne(ns, filter: ["_id": .int32(1)])
            let events = try read(stream!, count: 3)
            #expect(operationTypes(events) == ["insert", "update", "delete"])
            if case .document(let full)? = events[1]["fullDocument"] {
                #expect(full["v"] == .string("b"))
            } else {
                Issue.record("the update event has no fullDocument: \(events[1])")
            }
            let token = try #require(stream?.resumeToken)
            stream = nil

            // Writes made while no stream is open are delivered after resuming from the saved token.
            for i in 2...4 { try pool.insertOne(ns, ["_id": .int32(Int32(i))]) }
            let resumed = try ChangeStream(pool: pool, namespace: ns, options: .init(resumeAfter: token))
            let after = try read(resumed, count: 3)
            #expect(operationTypes(after) == ["insert", "insert", "insert"])
            let ids = after.compactMap { event -> String? in
                guard case .document(let key)? = event["documentKey"], let id = key["_id"] else { return nil }
                switch id {
                case .int32(let v): return String(v)
                case .string(let s): return s  // nx-27017 sends non-ObjectId ids as strings
                default: return nil
                }
            }
            #expect(ids == ["2", "3", "4"])
        }
    }

    @Test("an idle change stream polled with a 50 ms backoff costs under 10% of a core")
    func idleStreamIsCheap() throws {
        try withMongoServer { server in
            let pool = try MongoClientPool(uri: server.uri)
            let ns = MongoNamespace(database: server.database, collection: "idle")
            try pool.insertOne(ns, ["_id": .int32(0)])
            let stream = try ChangeStream(pool: pool, namespace: ns, options: .init(maxAwaitTimeMS: 100))
            let cpuStart = threadCPUSeconds()
            let wallStart = Date()
            var polls = 0
            while Date().timeIntervalSince(wallStart) < 3 {
                if try stream.next() == nil { usleep(50_000) }
                polls += 1
            }
            let share = (threadCPUSeconds() - cpuStart) / Date().timeIntervalSince(wallStart)
            #expect(polls > 20, "the stream was not polled: \(polls)")
            #expect(share < 0.10, "idle stream used \(share * 100)% of a core")
        }
    }

    @Test("100,000 BSON builds and parses keep resident memory flat")
    func bsonDoesNotLeak() throws {
        let document: BSONDocument = [
            "_id": .objectId(ObjectID(hex: "5f1d7a0b9c8e7d6f5a4b3c2d")!), "name": .string(String(repeating: "x", count: 200)),
            "tags": .array([.string("a"), .int64(7), .document(["k": .double(1.5)])]),
        ]
        func round(_ n: Int) throws {
            for _ in 0..<n {
                let handle = BSONHandle(document)
                _ = try handle.document()
                _ = handle.relaxedExtendedJSON
            }
        }
        try round(10_000)
        let before = try #require(ResidentMemory.bytes())
        try round(100_000)
        let growth = try #require(ResidentMemory.bytes()) - before
        #expect(growth < 8 << 20, "resident memory grew by \(growth) bytes over 100,000 BSON round trips")
    }

    @Test("10,000 change-stream batches keep resident memory flat")
    func changeStreamDoesNotLeak() throws {
        try withMongoServer(.init(inMemory: true)) { server in
            let pool = try MongoClientPool(uri: server.uri)
            let ns = MongoNamespace(database: server.database, collection: "leak")
            try pool.insertOne(ns, ["_id": .int32(0)])
            let stream = try ChangeStream(pool: pool, namespace: ns, options: .init(batchSize: 1, maxAwaitTimeMS: 10))
            var nextID: Int32 = 1
            func batches(_ n: Int) throws -> Int {
                var events = 0
                for i in 0..<n {
                    if i % 50 == 0 {
                        // Distinct ids across both calls (random ones collided now and then).
                        try pool.insertOne(ns, ["_id": .int32(nextID), "p": .string("x")])
                        nextID += 1
                    }
                    if try stream.next() != nil { events += 1 }
                }
                return events
            }
            _ = try batches(1_000)
            let before = try #require(ResidentMemory.bytes())
            let events = try batches(10_000)
            let growth = try #require(ResidentMemory.bytes()) - before
            #expect(events >= 150, "too few events were read to exercise the stream: \(events)")
            #expect(growth < 8 << 20, "resident memory grew by \(growth) bytes over 10,000 change-stream batches")
        }
    }
}
