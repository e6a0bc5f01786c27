/// `redis.sentinel:` find the master through Redis Sentinel. The URL's host and port are then not used; its user,
/// password, database and scheme (TLS) apply to the master.
public struct RedisSentinelSettings: Sendable, Equatable {
    /// The name the sentinels monitor the master under.
    public var masterName: String
    /// The sentinels' addresses (`host:port`, port 26379 when left out), asked in order.
    public var nodes: [(host: String, port: Int)]
    /// The sentinels' ACL user, if any.
    public var username: String?
    /// The sentinels' password, if any (never logged).
    public var password: String?

    /// Settings for `masterName` behind `nodes`.
    public init(masterName: String, nodes: [(host: String, port: Int)], username: String? = nil, password: String? = nil) {
        self.masterName = masterName
        self.nodes = nodes
        self.username = username
        self.password = password
    }

    public static func == (a: RedisSentinelSettings, b: RedisSentinelSettings) -> Bool {
        a.masterName == b.masterName && a.username == b.username && a.password == b.password
            && a.nodes.map { "\($0.host):\($0.port)" } == b.nodes.map { "\($0.host):\($0.port)" }
    }
}
