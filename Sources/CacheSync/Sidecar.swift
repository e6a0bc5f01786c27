import CacheSyncCore
import Foundation
import Logging
import Metrics
import MongoBridge
import RedisBridge
import ServiceLifecycle
import UnixSignals

/// `cachesync run`: bootstraps logging, then runs the sync services until SIGTERM/SIGINT.
public enum Sidecar {
    /// The Redis the config names, for the start line: the master behind Sentinel, a cluster's seeds, or host:port.
    static func redisTarget(_ redis: RedisSettings) -> String {
        let host = "\(redis.endpoint.host):\(redis.endpoint.port)"
        if let sentinel = redis.sentinel { return "master \(sentinel.masterName) via \(sentinel.nodes.count) sentinels/\(redis.endpoint.db)" }
        if let cluster = redis.cluster { return "cluster via \(host) and \(cluster.nodes.count) more seeds" }
        return "\(host)/\(redis.endpoint.db)"
    }

    /// Runs the sidecar; returns the process exit code (0 clean stop, 1 fatal runtime error).
    public static func run(config: CacheSyncConfig, logFormat: LogFormat, logLevel: String) async -> Int32 {
        // SIGHUP reloads the config (its default action would end the process): trapped from the start.
        let sighup = await UnixSignalsSequence(trapping: .sighup)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = RedactingLogHandler(label: label, format: logFormat)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "cachesync")
        let mongocLogger = Logger(label: "libmongoc")
        MongoLog.setHandler { level, domain, message in
            let mapped: Logger.Level = switch level {
            case .error, .critical: .error
            case .warning: .warning
            case .message, .info: .info
            case .debug: .debug
            case .trace: .trace
            }
            mongocLogger.log(level: mapped, "\(message)", metadata: ["domain": "\(domain)"])
        }
        let instanceId = SyncService.instanceId(config: config)
        logger.info("cachesync \(cacheSyncVersion) starting", metadata: [
            "instance": "\(instanceId)", "collections": "\(config.collections.map(\.namespace).joined(separator: ","))",
            "mongodb": "\(Self.hosts(of: config.mongodb.uri))",
            "redis": "\(Self.redisTarget(config.redis))",
            "redisTLS": "\(config.redis.effectiveTLS != nil)",
        ])
        if config.redis.effectiveTLS?.insecureSkipVerify == true {
            logger.warning("""
                redis.tls.insecureSkipVerify is set: the Redis server's certificate and name are not checked, so \
                anyone on the path can read and change the cache. Use it for tests only
                """)
        }
        let switches = TestSwitches.current.active
        if !switches.isEmpty {
            logger.warning("""
                test-only switches are set: \(switches.joined(separator: ", ")); this debug build may cache stale \
                documents or delay writes. Never use it in production
                """)
        }
        let pool: MongoClientPool
        do {
            pool = try MongoClientPool(uri: config.mongodb.uri)
        } catch {
            logger.critical("\(config.sourcePath): mongodb.uri: \(error)")
            return 2
        }
        let registry = MetricsBootstrap.bootstrap()
        let telemetry = Telemetry(collections: config.collections.map(\.namespace))
        if !config.lease.enabled {
            // Without leases every instance applies every collection.
            config.collections.forEach { telemetry.setLeader($0.namespace, until: .infinity) }
        }
        let sync = SyncService(config: config, instanceId: instanceId, pool: pool, telemetry: telemetry, logger: logger)
        let live = LiveConfig(config)
        let http: HTTPService
        do {
            http = try HTTPService(live: live, pool: pool, telemetry: telemetry, registry: registry, logger: logger)
        } catch {
            logger.critical("\(config.sourcePath): \(error)")
            return 2
        }
        let watchdog = SilenceWatchdog(telemetry: telemetry, threshold: config.http.silenceWarningSeconds, logger: logger)
        let reloader = ConfigReloader(path: config.sourcePath, live: live, sync: sync, telemetry: telemetry,
                                      logger: logger, signals: sighup)
        // Graceful shutdown runs in reverse order: the sync service drains first, the HTTP API answers until the end.
        var groupConfig = ServiceGroupConfiguration(
            services: [
                .init(service: http, successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: watchdog, successTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: reloader, successTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: sync, successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        groupConfig.maximumGracefulShutdownDuration = .milliseconds(Int64(config.shutdownTimeout * 1000))
        // Behind Sentinel, a failover announced on +switch-master moves every connection to the new master.
        let subscription = config.redis.sentinel.map { _ in
            RedisSentinelSubscription(options: config.redisConnectionOptions()) { logger.notice("\($0)") }
        }
        subscription?.start()
        defer { subscription?.stop() }
        do {
            try await ServiceGroup(configuration: groupConfig).run()
            logger.info("cachesync stopped cleanly")
            return 0
        } catch {
            logger.critical("cachesync stopped: \(error)")
            return 1
        }
    }

    /// The host list of a MongoDB URI, without scheme, credentials, path or options: what the logs may show. As
    /// libmongoc parses it; a URI it refuses (the pool reports why), or one whose hosts it read with an `@` in them
    /// (a password written without percent-encoding), is cut by hand after the last `@` of its credentials.
    static func hosts(of uri: String) -> String {
        if let hosts = MongoURI.hosts(uri), !hosts.contains("@") { return hosts }
        var rest = Substring(uri)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) { rest = rest[..<end] }
        return String(rest)
    }
}
