/// `redis.cluster:` the Redis is a Redis Cluster. The URL's host and `nodes` are the seeds the slot map is asked
/// from; the URL's user, password and scheme (TLS) apply to every node, and its database must be 0.
public struct RedisClusterSettings: Sendable, Equatable {
    /// More seeds besides the URL's host (`host:port`, port 6379 when left out).
    public var nodes: [RedisSentinelSettings.Node]

    /// Settings with these extra seeds.
    public init(nodes: [RedisSentinelSettings.Node] = []) {
        self.nodes = nodes
    }
}
