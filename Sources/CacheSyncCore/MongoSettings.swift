/// `mongodb:` settings.
public struct MongoSettings: Sendable, Equatable {
    /// The connection string (may hold a password: never log it).
    public var uri: String
    /// The database of collections named without one (empty when every collection names its database).
    public var database: String

    /// Settings with a URI and a default database.
    public init(uri: String, database: String) {
        self.uri = uri
        self.database = database
    }
}
