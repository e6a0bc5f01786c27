/// A write refused because this instance no longer holds the collection's lease: the lease key changed before
/// `EXEC`, so the transaction wrote nothing. The watcher stands by; nothing is retried.
struct FencedWriteError: Error, CustomStringConvertible {
    /// The collection's lease key.
    let leaseKey: String

    var description: String {
        "this instance no longer holds the collection lease (\(leaseKey)); the write was refused"
    }
}
