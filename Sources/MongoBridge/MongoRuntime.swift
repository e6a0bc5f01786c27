import CMongoc

/// Initialises libmongoc once per process, before the first handle is made.
enum MongoRuntime {
    private static let initialised: Bool = {
        mongoc_init()
        return true
    }()

    /// Makes sure `mongoc_init` has run.
    static func ensureInitialised() {
        _ = initialised
    }
}
