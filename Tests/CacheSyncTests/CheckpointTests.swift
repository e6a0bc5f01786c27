import BSONModel
@testable import CacheSync
import Testing

/// How a checkpoint is stored in Redis and read back, and where a collection's keys live.
@Suite("Checkpoint text stored in Redis")
struct CheckpointTests {
    static let token: BSONDocument = ["_data": .string("8263A1B2C3000000012B022C0100296E5A1004")]

    @Test("resumeAfter and startAfter checkpoints read back as what was stored", arguments: [
        Checkpoint.resumeAfter(token), Checkpoint.startAfter(token),
        Checkpoint.resumeAfter(["_data": .string("nx:42")]),
    ])
    func roundTrip(_ checkpoint: Checkpoint) {
        #expect(Checkpoint(storedText: checkpoint.storedText) == checkpoint)
    }

    @Test("text that is not a checkpoint reads as none", arguments: ["", "nx:42", "{}", #"{"resumeAfter": 5}"#, "{not json"])
    func garbage(_ text: String) {
        #expect(Checkpoint(storedText: text) == nil)
    }

    @Test("a warm-up position reads back as stored, its _id's type kept exactly", arguments: [
        WarmupPosition.start, WarmupPosition(after: .int32(7), done: 1_024), WarmupPosition(after: .int64(7), done: 3),
        WarmupPosition(after: .string("d000123"), done: 2_048),
        WarmupPosition(after: .objectId(ObjectID(bytes: [0x65, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b])!), done: 50_000),
    ])
    func warmupPositionRoundTrip(_ position: WarmupPosition) {
        #expect(WarmupPosition(storedText: position.storedText) == position)
    }

    @Test("a warm-up position's documents still to read are those with _id above the last one, or all at the start")
    func warmupFilter() {
        #expect(WarmupPosition.start.filter == [:])
        #expect(WarmupPosition(after: .string("a"), done: 1).filter == ["_id": .document(["$gt": .string("a")])])
        #expect(WarmupPosition(storedText: "{}") == nil && WarmupPosition(storedText: "nope") == nil)
    }

    @Test("the keys of a collection live under the checkpoint prefix")
    func keys() {
        let keys = SyncKeys(checkpointPrefix: "cs:", namespace: "shop.products")
        #expect([keys.resume, keys.leader, keys.epoch, keys.applied, keys.warmup]
                == ["cs:resume:shop.products", "cs:leader:shop.products", "cs:epoch:shop.products", "cs:applied:shop.products",
                    "cs:warmup:shop.products"])
    }
}
