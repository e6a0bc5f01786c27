import BSONModel
import CacheSync
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

    @Test("the keys of a collection live under the checkpoint prefix")
    func keys() {
        let keys = SyncKeys(checkpointPrefix: "cs:", namespace: "shop.products")
        #expect([keys.resume, keys.leader, keys.epoch, keys.applied]
                == ["cs:resume:shop.products", "cs:leader:shop.products", "cs:epoch:shop.products", "cs:applied:shop.products"])
    }
}
