import BSONModel
import MongoBridge

/// Where a `ChangePipeline` reads raw change events from: a MongoDB change stream, or a synthetic source.
public protocol ChangeEventSource: AnyObject {
    /// The next event's BSON bytes, or `nil` when none is available now; throws when the source failed.
    func nextEventBytes() throws -> [UInt8]?
    /// The token to save to resume after everything returned so far.
    var resumeToken: BSONDocument? { get }
}

extension ChangeStream: ChangeEventSource {}
