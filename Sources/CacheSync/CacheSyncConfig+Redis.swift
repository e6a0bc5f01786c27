import CacheSyncCore
import RedisBridge

extension CacheSyncConfig {
    /// A lazily connecting connection to the configured Redis (the first command connects).
    func redisConnection(connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(5)) -> RedisConnection {
        let endpoint = redis.endpoint
        let options = RedisConnectionOptions(host: endpoint.host, port: endpoint.port, db: endpoint.db,
                                             user: endpoint.user, password: endpoint.password,
                                             connectTimeout: connectTimeout, commandTimeout: commandTimeout)
        // connectNow: false never throws.
        return try! RedisConnection(options: options, connectNow: false)
    }
}
