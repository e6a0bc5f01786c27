import CacheSyncCore
import RedisBridge

extension CacheSyncConfig {
    /// A lazily connecting connection to the configured Redis (the first command connects).
    func redisConnection(connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(5)) -> RedisConnection {
        // connectNow: false never throws.
        try! RedisConnection(options: redisConnectionOptions(connectTimeout: connectTimeout, commandTimeout: commandTimeout),
                             connectNow: false)
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
