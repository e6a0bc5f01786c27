/// Where a connection finds its master through Redis Sentinel: the master's name and the sentinels to ask, with the
/// sentinels' own credentials. TLS, when the connection has it, applies to the sentinels too.
public struct RedisSentinelOptions: Sendable, Hashable {
    /// One sentinel's address.
    public struct Node: Sendable, Hashable, CustomStringConvertible {
        /// Host name or IP address.
        public var host: String
        /// TCP port (Sentinel's default is 26379).
        public var port: Int

        /// A sentinel at `host:port`.
        public init(host: String, port: Int = 26379) {
            self.host = host
            self.port = port
        }

        /// `host:port`.
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The name the sentinels monitor the master under.
    public var masterName: String
    /// The sentinels, asked in order until one knows the master.
    public var nodes: [Node]
    /// The sentinels' ACL user, if any.
    public var user: String?
    /// The sentinels' password, if any (never logged).
    public var password: String?

    /// Sentinel discovery of `masterName` through `nodes`.
    public init(masterName: String, nodes: [Node], user: String? = nil, password: String? = nil) {
        self.masterName = masterName
        self.nodes = nodes
        self.user = user
        self.password = password
    }
}
