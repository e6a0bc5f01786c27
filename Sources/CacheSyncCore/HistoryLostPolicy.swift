/// What to do when the server no longer has the history a resume token needs.
public enum HistoryLostPolicy: String, Sendable, Equatable, CaseIterable {
    /// Remove every key of the collection and restart from now.
    case flush
    /// Exit 1 with a clear message.
    case fail
}
