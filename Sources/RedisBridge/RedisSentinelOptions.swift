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

    /// The master's address in a `SENTINEL get-master-addr-by-name` reply, or `nil` when the sentinel does not
    /// know the master.
    static func masterAddress(in reply: RedisReply) -> (host: String, port: Int)? {
        guard let address = reply.array, address.count == 2, let host = address[0].text,
              let portText = address[1].text, let port = Int(portText) else { return nil }
        return (host, port)
    }

    /// Sentinel discovery of `masterName` through `nodes`.
    public init(masterName: String, nodes: [Node], user: String? = nil, password: String? = nil) {
        self.masterName = masterName
        self.nodes = nodes
        self.user = user
        self.password = password
    }
}
