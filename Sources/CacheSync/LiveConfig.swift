import CacheSyncCore
import Foundation

/// The config in force, shared by the services that must follow a reload (the HTTP routes, `/v1/cache`'s
/// collection names): one lock, read at every use instead of copied at start. `ConfigReloader` replaces it.
public final class LiveConfig: @unchecked Sendable {
    private let lock = NSLock()
    private var config: CacheSyncConfig
    private var routes: [String: CollectionConfig]

    /// The config the process started with.
    public init(_ config: CacheSyncConfig) {
        self.config = config
        routes = Self.routeNames(config)
    }

    /// The config in force now.
    public var current: CacheSyncConfig { lock.withLock { config } }

    /// The collections by the names a `/v1/cache` URL may use (`db.coll`, and `coll` for those in
    /// `mongodb.database`, or unique).
    var collectionsByRouteName: [String: CollectionConfig] { lock.withLock { routes } }

    /// Puts `config` in force.
    func replace(with config: CacheSyncConfig) {
        let names = Self.routeNames(config)
        lock.withLock {
            self.config = config
            routes = names
        }
    }

    /// The URL names of each collection.
    static func routeNames(_ config: CacheSyncConfig) -> [String: CollectionConfig] {
        var names: [String: CollectionConfig] = [:]
        for collection in config.collections {
            names[collection.namespace] = collection
        }
        let byName = Dictionary(grouping: config.collections, by: \.collection)
        for (name, matches) in byName where names[name] == nil {
            if let match = matches.first(where: { $0.database == config.mongodb.database }) ?? (matches.count == 1 ? matches[0] : nil) {
                names[name] = match
            }
        }
        return names
    }
}
