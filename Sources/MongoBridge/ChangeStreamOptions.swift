import BSONModel

/// How a change stream is opened.
public struct ChangeStreamOptions: Sendable {
    /// `fullDocument` option, e.g. `updateLookup`; `nil` leaves the server default.
    public var fullDocument: String?
    /// `fullDocumentBeforeChange` option (`whenAvailable`: the pre-image, or null); `nil` asks for none.
    public var fullDocumentBeforeChange: String?
    /// Resume after this token (normal resume).
    public var resumeAfter: BSONDocument?
    /// Start after this token (also works after an `invalidate` event).
    public var startAfter: BSONDocument?
    /// Start at this cluster time (seconds, increment).
    public var startAtOperationTime: (seconds: UInt32, increment: UInt32)?
    /// Documents per batch.
    public var batchSize: Int32?
    /// How long the server waits for new events on an empty getMore.
    public var maxAwaitTimeMS: Int64?
    /// Extra aggregation stages after `$changeStream`.
    public var pipeline: [BSONDocument]

    /// Options; all unset by default.
    public init(fullDocument: String? = nil, resumeAfter: BSONDocument? = nil, startAfter: BSONDocument? = nil,
                startAtOperationTime: (seconds: UInt32, increment: UInt32)? = nil, batchSize: Int32? = nil,
                maxAwaitTimeMS: Int64? = nil, pipeline: [BSONDocument] = []) {
        self.fullDocument = fullDocument
        self.resumeAfter = resumeAfter
        self.startAfter = startAfter
        self.startAtOperationTime = startAtOperationTime
        self.batchSize = batchSize
        self.maxAwaitTimeMS = maxAwaitTimeMS
        self.pipeline = pipeline
    }

    /// The `opts` document libmongoc's watch functions take.
    var optionsDocument: BSONDocument {
        var opts = BSONDocument()
        if let fullDocument { opts["fullDocument"] = .string(fullDocument) }
        if let fullDocumentBeforeChange { opts["fullDocumentBeforeChange"] = .string(fullDocumentBeforeChange) }
        if let resumeAfter { opts["resumeAfter"] = .document(resumeAfter) }
        if let startAfter { opts["startAfter"] = .document(startAfter) }
        if let t = startAtOperationTime { opts["startAtOperationTime"] = .timestamp(seconds: t.seconds, increment: t.increment) }
        if let batchSize { opts["batchSize"] = .int32(batchSize) }
        if let maxAwaitTimeMS { opts["maxAwaitTimeMS"] = .int64(maxAwaitTimeMS) }
        return opts
    }
}
