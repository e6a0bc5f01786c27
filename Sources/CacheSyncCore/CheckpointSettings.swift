/// `checkpoint:` settings.
public struct CheckpointSettings: Sendable, Equatable {
    /// Resume tokens live at `<keyPrefix>resume:<db>.<coll>`, leases at `<keyPrefix>leader:<db>.<coll>`.
    public var keyPrefix: String

    /// Settings with a key prefix.
    public init(keyPrefix: String = "cachesync:") {
        self.keyPrefix = keyPrefix
    }
}
