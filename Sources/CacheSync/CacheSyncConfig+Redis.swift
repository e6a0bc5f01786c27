import CacheSyncCore
import RedisBridge

extension CacheSyncConfig {
    /// A lazily connecting client of the configured Redis (the first command connects): one server, or a
    /// `RedisCluster` seeded with the URL's host and `redis.cluster.nodes`, counting its redirections in `telemetry`.
    func redisConnection(connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(5),
                         telemetry: Telemetry? = nil) -> any RedisClient {
        let options = redisConnectionOptions(connectTimeout: connectTimeout, commandTimeout: commandTimeout)
        if let cluster = redis.cluster {
            let seeds = [RedisCluster.Node(host: redis.endpoint.host, port: redis.endpoint.port)]
                + cluster.nodes.map { RedisCluster.Node(host: $0.host, port: $0.port) }
            let client = RedisCluster(options: options, seeds: seeds)
            if let telemetry { client.onRedirect = { telemetry.redisRedirected($0.rawValue) } }
            return client
        }
        // connectNow: false never throws.
        return try! RedisConnection(options: options, connectNow: false)
    }

    /// The layout of `collection`'s cache keys; on a cluster their derived keys share their slot.
    func keyLayout(_ collection: CollectionConfig) -> CacheKey.Layout {
        CacheKey.Layout(collection: collection, keyPrefix: redis.keyPrefix, colocatingDerivedKeys: redis.cluster != nil)
    }

    /// The checkpoint, lease and counter keys of `collection`.
    func syncKeys(_ collection: CollectionConfig) -> SyncKeys {
        SyncKeys(checkpointPrefix: checkpoint.keyPrefix, namespace: collection.namespace, cluster: redis.cluster != nil)
    }

    /// How to connect to the configured Redis: endpoint or sentinels, credentials, TLS, timeouts.
    func redisConnectionOptions(connectTimeout: Duration = .seconds(2),
                                commandTimeout: Duration = .seconds(5)) -> RedisConnectionOptions {
        let endpoint = redis.endpoint
        var options = RedisConnectionOptions(host: endpoint.host, port: endpoint.port, db: endpoint.db,
                                             user: endpoint.user, password: endpoint.password,
                                             connectTimeout: connectTimeout, commandTimeout: commandTimeout)
        options.passwordFile = redis.passwordFile
        options.sentinel = redis.sentinel.map {
            RedisSentinelOptions(masterName: $0.masterName, nodes: $0.nodes.map { .init(host: $0.host, port: $0.port) },
                                 user: $0.username, password: $0.password)
        }
        options.tls = redis.effectiveTLS.map {
            RedisTLSOptions(caFile: $0.caFile, certFile: $0.certFile, keyFile: $0.keyFile, serverName: $0.serverName,
                            insecureSkipVerify: $0.insecureSkipVerify)
        }
        return options
    }
}
