import BSONModel
import MongoBridge

/// Where a warm-up continues: after the last `_id` of the last chunk written, with how many documents were read so
/// far. Stored in `<cp>warmup:<ns>` (`SyncKeys.warmup`) in the transaction that writes the chunk, and removed with
/// the last chunk, so a restart continues after the last chunk written and never re-reads one already written.
struct WarmupPosition: Sendable, Equatable {
    /// The `_id` of the last document of the last chunk written; `nil` before the first.
    var after: BSONValue?
    /// Documents read and written (or left to the stream) so far.
    var done: Int

    /// The start of a warm-up.
    static let start = WarmupPosition(after: nil, done: 0)

    /// A position.
    init(after: BSONValue?, done: Int) {
        self.after = after
        self.done = done
    }

    /// The text stored in Redis: canonical Extended JSON of `{done: N, after: <_id>}` (types kept exactly).
    var storedText: String {
        var document: BSONDocument = ["done": .int64(Int64(done))]
        if let after { document["after"] = after }
        return BSONHandle(document).canonicalExtendedJSON
    }

    /// Reads a stored position; `nil` when the text is not one.
    init?(storedText: String) {
        guard let document = try? BSONDocument(extendedJSON: storedText) else { return nil }
        switch document["done"] {
        case .int64(let n)?: done = Int(n)
        case .int32(let n)?: done = Int(n)
        default: return nil
        }
        after = document["after"]
    }

    /// The documents still to read, as a query: `_id` above `after` (for counting them).
    var filter: BSONDocument {
        guard let after else { return [:] }
        return ["_id": .document(["$gt": after])]
    }
}
