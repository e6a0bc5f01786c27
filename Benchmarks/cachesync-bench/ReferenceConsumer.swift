import BSONModel
import Foundation
import MongoBridge

/// A bare libmongoc change stream reading as fast as the server delivers — nx-27017's own delivery, the
/// baseline for the sidecar: it records when each document's event arrives and does nothing else.
/// An empty batch is followed by a 1 ms sleep (nx-27017 answers an empty getMore at once).
final class ReferenceConsumer: @unchecked Sendable {
    private let stream: ChangeStream
    private let log: ArrivalLog

    /// Opens the stream now (with the sidecar's options for an `update` collection) and reads on its own thread
    /// until `expected` events with integer `_id`s have arrived (others are ignored).
    init(pool: MongoClientPool, namespace: MongoNamespace, expected: Int) throws {
        stream = try ChangeStream(pool: pool, namespace: namespace,
                                  options: ChangeStreamOptions(fullDocument: "updateLookup", batchSize: 1024, maxAwaitTimeMS: 100))
        log = ArrivalLog(expected: expected)
        Thread.detachNewThread { [self] in read() }
    }

    private func read() {
        defer { log.finish() }
        while !log.isComplete {
            let next: BSONDocument?
            do {
                next = try stream.next()
            } catch {
                FileHandle.standardError.write(Data("bench: the bare change stream failed: \(error)\n".utf8))
                return
            }
            guard let event = next else {
                usleep(1000)
                continue
            }
            let time = Measure.now()
            guard case .document(let key)? = event["documentKey"], let id = key["_id"]?.integerID else { continue }
            log.record(id, at: time)
        }
    }

    /// Waits until every expected event arrived; `nil` on timeout, else each document's arrival time.
    func wait(timeout: Double) -> [Int: Double]? {
        log.wait(timeout: timeout)
    }
}

extension BSONValue {
    /// An integer `_id` as an `Int`; nx-27017 sends `documentKey._id` as its decimal text.
    var integerID: Int? {
        switch self {
        case .int32(let value): Int(value)
        case .int64(let value): Int(value)
        case .string(let text): Int(text)
        default: nil
        }
    }
}
