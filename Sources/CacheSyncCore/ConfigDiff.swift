/// What a reloaded config changes against the running one (docs/ARCHITECTURE.md §3, "Reload"): collections added,
/// removed and changed (by namespace), and the settings that only a restart can change. Pure: plain values in,
/// plain values out.
public struct ConfigDiff: Sendable, Equatable {
    /// Collections in the new config only: they start.
    public var added: [CollectionConfig]
    /// Collections in the running config only: they stop and release their leases.
    public var removed: [CollectionConfig]
    /// Collections in both whose settings differ (any field, `defaults` included as they resolve into each
    /// collection): they restart with the new settings, from their checkpoint.
    public var changed: [(old: CollectionConfig, new: CollectionConfig)]
    /// The fields that differ but are read only at start (`mongodb.uri`, `redis.url`, …), as dotted paths.
    public var restartNeeded: [String]

    /// The differences between the running config `old` and the reloaded `new`.
    public init(old: CacheSyncConfig, new: CacheSyncConfig) {
        let before = Dictionary(old.collections.map { ($0.namespace, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new.collections.map { ($0.namespace, $0) }, uniquingKeysWith: { first, _ in first })
        added = new.collections.filter { before[$0.namespace] == nil }
        removed = old.collections.filter { after[$0.namespace] == nil }
        changed = new.collections.compactMap { collection in
            guard let previous = before[collection.namespace], previous != collection else { return nil }
            return (previous, collection)
        }
        restartNeeded = Self.restartOnlyFields(old, new)
    }

    /// Whether the collections are the same (the restart-only fields aside).
    public var collectionsUnchanged: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

    /// The namespaces of `added`, `removed` and `changed`, for the reload's log line.
    public var summary: String {
        func names(_ list: [String]) -> String { list.isEmpty ? "none" : list.joined(separator: ",") }
        return "added \(names(added.map(\.namespace))); removed \(names(removed.map(\.namespace))); "
            + "changed \(names(changed.map(\.new.namespace)))"
    }

    /// The settings read only at start: where MongoDB and Redis are and how to reach them, the key prefix every
    /// key starts with, the listening addresses and the API token file, the checkpoint and lease keys and timings,
    /// the shutdown timeout, the silence warning and `readyAfterWarmup` (the readiness probe's). Their values are never named, only the fields (they may hold
    /// secrets).
    static func restartOnlyFields(_ old: CacheSyncConfig, _ new: CacheSyncConfig) -> [String] {
        var fields: [String] = []
        func check<T: Equatable>(_ field: String, _ a: T, _ b: T) {
            if a != b { fields.append(field) }
        }
        check("mongodb.uri", old.mongodb.uri, new.mongodb.uri)
        check("redis.url", old.redis.url, new.redis.url)
        check("redis.keyPrefix", old.redis.keyPrefix, new.redis.keyPrefix)
        check("redis.passwordFile", old.redis.passwordFile, new.redis.passwordFile)
        check("redis.tls", old.redis.tls, new.redis.tls)
        check("redis.sentinel", old.redis.sentinel, new.redis.sentinel)
        check("redis.cluster", old.redis.cluster, new.redis.cluster)
        check("http.listen", old.http.listen, new.http.listen)
        check("http.silenceWarning", old.http.silenceWarningSeconds, new.http.silenceWarningSeconds)
        check("http.api.listen", old.http.apiAddress, new.http.apiAddress)
        check("http.api.tokenFile", old.http.apiTokenFile, new.http.apiTokenFile)
        check("checkpoint.keyPrefix", old.checkpoint.keyPrefix, new.checkpoint.keyPrefix)
        check("lease.enabled", old.lease.enabled, new.lease.enabled)
        check("lease.ttl", old.lease.ttlSeconds, new.lease.ttlSeconds)
        check("lease.instanceId", old.lease.instanceId, new.lease.instanceId)
        check("shutdownTimeout", old.shutdownTimeout, new.shutdownTimeout)
        check("readyAfterWarmup", old.readyAfterWarmup, new.readyAfterWarmup)
        // A setting added later and not listed above is never ignored silently: the running config with every
        // field reloaded live or listed above taken from the new one must equal the new one.
        var rest = old
        rest.collections = new.collections
        rest.mongodb.uri = new.mongodb.uri
        rest.mongodb.database = new.mongodb.database
        rest.redis.url = new.redis.url
        rest.redis.endpoint = new.redis.endpoint
        rest.redis.keyPrefix = new.redis.keyPrefix
        rest.redis.passwordFile = new.redis.passwordFile
        rest.redis.tls = new.redis.tls
        rest.redis.sentinel = new.redis.sentinel
        rest.redis.cluster = new.redis.cluster
        rest.http.host = new.http.host
        rest.http.port = new.http.port
        rest.http.silenceWarningSeconds = new.http.silenceWarningSeconds
        rest.http.apiAddress = new.http.apiAddress
        rest.http.apiTokenFile = new.http.apiTokenFile
        rest.checkpoint.keyPrefix = new.checkpoint.keyPrefix
        rest.lease.enabled = new.lease.enabled
        rest.lease.ttlSeconds = new.lease.ttlSeconds
        rest.lease.instanceId = new.lease.instanceId
        rest.shutdownTimeout = new.shutdownTimeout
        rest.readyAfterWarmup = new.readyAfterWarmup
        rest.sourcePath = new.sourcePath
        if rest != new { fields.append("(another setting)") }
        return fields
    }

    public static func == (a: ConfigDiff, b: ConfigDiff) -> Bool {
        a.added == b.added && a.removed == b.removed && a.restartNeeded == b.restartNeeded
            && a.changed.map(\.old) == b.changed.map(\.old) && a.changed.map(\.new) == b.changed.map(\.new)
    }
}
