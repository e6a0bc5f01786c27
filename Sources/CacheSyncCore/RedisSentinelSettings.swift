/// `redis.sentinel:` find the master through Redis Sentinel. The URL's host and port are then not used; its user,
/// password, database and scheme (TLS) apply to the master.
public struct RedisSentinelSettings: Sendable, Equatable {
    /// One sentinel's address.
    public struct Node: Sendable, Equatable, CustomStringConvertible {
        /// Host name or IP address (IPv6 without brackets).
        public var host: String
        /// TCP port (26379 when the config leaves it out).
        public var port: Int

        /// A sentinel at `host:port`.
        public init(host: String, port: Int = 26379) {
            self.host = host
            self.port = port
        }

        /// `host:port`, an IPv6 host in brackets: as the config writes it.
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The name the sentinels monitor the master under.
    public var masterName: String
    /// The sentinels, asked in order.
    public var nodes: [Node]
    /// The sentinels' ACL user, if any.
    public var username: String?
    /// The sentinels' password, if any (never logged).
    public var password: String?

    /// Settings for `masterName` behind `nodes`.
    public init(masterName: String, nodes: [Node], username: String? = nil, password: String? = nil) {
        self.masterName = masterName
        self.nodes = nodes
        self.username = username
        self.password = password
    }
}
