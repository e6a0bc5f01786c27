import BSONModel
import MongoBridge

/// Where a `ChangePipeline` reads raw change events from: a MongoDB change stream, or a synthetic source.
public protocol ChangeEventSource: AnyObject {
    /// The next raw event, or `nil` when none is available now; throws when the source failed.
    func next() throws -> BSONDocument?
    /// The BSON size of the event `next()` returned last, in bytes.
    var lastEventByteCount: Int { get }
    /// The token to save to resume after everything returned so far.
    var resumeToken: BSONDocument? { get }
}

extension ChangeStream: ChangeEventSource {}
