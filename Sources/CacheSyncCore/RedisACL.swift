/// The least privilege cachesync needs on Redis (README "Least privilege"): the commands it sends, itself or from
/// its Lua scripts, and the key patterns of one config's keys. `cachesync check-config --acl` prints the rule.
public enum RedisACL {
    /// Every command cachesync sends to one server. `select` only with a database other than 0, `role` only behind
    /// Sentinel, `info` for `/readyz` (which checks that the server is not a cluster node); `pexpire` and `incr` run
    /// inside the lease scripts (`eval`/`evalsha`), which Redis checks like any command; the sorted-set commands
    /// with `time` spread the leases over the replicas (`LeaseBalancer`).
    public static let commands = [
        "ping", "info", "select", "role",
        "get", "mget", "set", "del", "unlink", "expire", "pexpire", "incr", "hincrby",
        "eval", "evalsha", "watch", "unwatch", "multi", "exec", "scan",
        "time", "zadd", "zremrangebyscore", "zcard", "pttl",
    ]

    /// What a Redis Cluster needs besides `commands`: the slot map, `ASKING` before a command sent where `ASK`
    /// pointed, `WAIT` for a replica before a checkpoint, and the fence hashes the cluster scripts read and raise.
    public static let clusterCommands = ["cluster|slots", "asking", "wait", "hget", "hset"]

    /// The commands of `config`: `commands`, and `clusterCommands` on a cluster.
    public static func commands(_ config: CacheSyncConfig) -> [String] {
        var all = config.redis.cluster == nil ? commands : commands + clusterCommands
        if config.collections.contains(where: { $0.format == .hash }) {
            all += hashCommands.filter { !all.contains($0) }
        }
        return all
    }

    /// What `format: hash` needs besides `commands`: writing, reading and refreshing hashes (`TYPE` tells a cached
    /// hash from another value).
    public static let hashCommands = ["hset", "hget", "hgetall", "type"]

    /// The globs of every key `config` touches: each collection's keys with their `:lease`, `:access_count` and
    /// `:indexes` companions, its secondary keys, and the checkpoint keys. A pattern another covers is left out. Redis refuses white space in an
    /// ACL key pattern, so each white-space character is `?` (any one character) there.
    public static func keyPatterns(_ config: CacheSyncConfig) -> [String] {
        var patterns = [CacheKey.escapeGlob(config.checkpoint.keyPrefix) + "*"]
        for collection in config.collections {
            let keys = CacheKey.collectionPattern(collection: collection, keyPrefix: config.redis.keyPrefix)
            patterns.append(keys.hasSuffix("*") ? keys : keys + "*")
            if config.redis.cluster != nil { patterns.append(CacheKey.colocatedDerivedPattern(keys)) }
            for index in collection.indexes {
                let secondary = index.pattern(keyPrefix: config.redis.keyPrefix, database: collection.database,
                                              collection: collection.collection)
                patterns.append(secondary.hasSuffix("*") ? secondary : secondary + "*")
            }
        }
        patterns = patterns.map { String($0.map { " \t\n\r\u{0B}\u{0C}".contains($0) ? "?" : $0 }) }
        // A pattern that is a literal prefix + "*" covers every pattern starting with that prefix.
        let unique = Array(Set(patterns)).sorted()
        return unique.filter { pattern in
            !unique.contains { other in
                other != pattern && isPrefixGlob(other) && pattern.hasPrefix(String(other.dropLast()))
            }
        }
    }

    /// The ACL rule for `keyPatterns`: only those keys, no Pub/Sub channel, only `commands`.
    public static func rule(keyPatterns: [String], commands: [String] = commands) -> String {
        (["resetkeys"] + keyPatterns.map { "~" + $0 } + ["resetchannels", "-@all"] + commands.map { "+" + $0 })
            .joined(separator: " ")
    }

    /// `ACL SETUSER <user> on >PASSWORD <rule>` for `config`: the user of `redis.url` (else `cachesync`); the
    /// password is left for the operator to fill in.
    public static func setUserCommand(_ config: CacheSyncConfig) -> String {
        "ACL SETUSER \(config.redis.endpoint.user ?? "cachesync") on >PASSWORD \(rule(keyPatterns: keyPatterns(config), commands: commands(config)))"
    }

    /// Whether `glob` is a literal (escaped) prefix followed by one `*`.
    private static func isPrefixGlob(_ glob: String) -> Bool {
        guard glob.hasSuffix("*") else { return false }
        var escaped = false
        for c in glob.dropLast() {
            if escaped { escaped = false; continue }
            if c == "\\" { escaped = true; continue }
            if "*?[".contains(c) { return false }
        }
        return !escaped
    }
}
