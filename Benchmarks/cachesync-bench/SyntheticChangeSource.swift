import BSONModel
import CacheSync
import Foundation

/// An in-process source of change events in MongoDB's real format (BSON bytes, as a change stream hands them
/// over): `update` events on `distinctIDs` documents, with or without the looked-up `fullDocument`.
final class SyntheticChangeSource: ChangeEventSource {
    private let events: [[UInt8]]
    private let total: Int
    private var served = 0

    /// `total` events cycling through `events` (as `events(database:collection:distinctIDs:withFullDocument:)`
    /// makes them), from the first.
    init(events: [[UInt8]], total: Int) {
        self.events = events
        self.total = total
    }

    /// One event's bytes per document of `distinctIDs` on `database.collection`.
    static func events(database: String, collection: String, distinctIDs: Int, withFullDocument: Bool) -> [[UInt8]] {
        (0..<distinctIDs).map { n in
            updateEvent(n: n, database: database, collection: collection, withFullDocument: withFullDocument).bsonBytes()
        }
    }

    /// The next event's bytes (a fresh copy from a buffer, as `ChangeStream` makes of the `bson_t` libmongoc
    /// returns), `nil` at the end.
    func nextEventBytes() throws -> [UInt8]? {
        guard served < total else { return nil }
        let bytes = events[served % events.count]
        served += 1
        return bytes.withUnsafeBufferPointer { Array($0) }
    }

    /// The source keeps no position of its own (a stream's `postBatchResumeToken`): the pipeline checkpoints
    /// the last event's token.
    var resumeToken: BSONDocument? { nil }

    /// The ObjectId of document `n`.
    static func objectID(_ n: Int) -> ObjectID {
        var bytes: [UInt8] = [0x66, 0x38, 0x81, 0xd9, 0xa1, 0xb2, 0xc3, 0xd4]
        withUnsafeBytes(of: UInt32(n).bigEndian) { bytes += $0 }
        return ObjectID(bytes: bytes)!
    }

    /// The document as `updateLookup` returns it: a product of about 300 bytes of JSON.
    static func document(n: Int) -> BSONDocument {
        [
            "_id": .objectId(objectID(n)),
            "sku": .string("SKU-\(100_000 + n)"),
            "name": .string("Widget \(n), stainless steel, 40 mm"),
            "price": .double(Double(n % 10_000) / 100),
            "qty": .int32(Int32(n % 500)),
            "tags": .array([.string("hardware"), .string("steel"), .string("sale")]),
            "stock": .document(["eu": .int32(Int32(n % 97)), "us": .int32(Int32(n % 89))]),
            "updatedAt": .datetime(1_714_979_290_000 + Int64(n)),
            "active": .bool(n % 3 != 0),
        ]
    }

    /// An `update` event as a replica set sends it, with `fullDocument` when the stream asked for `updateLookup`.
    static func updateEvent(n: Int, database: String, collection: String, withFullDocument: Bool) -> BSONDocument {
        let tokenHex = "82663881DA\(String(format: "%08X", n))2B022C0100296E5A1004A5B8C1D2E3F4461E9B7C0D1E2F3A4B5C46645F696400"
        var event: BSONDocument = [
            "_id": .document(["_data": .string(tokenHex)]),
            "operationType": .string("update"),
            "clusterTime": .timestamp(seconds: 1_714_979_290, increment: UInt32(n + 1)),
            "wallTime": .datetime(1_714_979_290_456),
            "ns": .document(["db": .string(database), "coll": .string(collection)]),
            "documentKey": .document(["_id": .objectId(objectID(n))]),
            "updateDescription": .document([
                "updatedFields": .document(["qty": .int32(Int32(n % 500))]),
                "removedFields": .array([]),
                "truncatedArrays": .array([]),
            ]),
        ]
        if withFullDocument { event.fields.append((key: "fullDocument", value: .document(document(n: n)))) }
        return event
    }
}
