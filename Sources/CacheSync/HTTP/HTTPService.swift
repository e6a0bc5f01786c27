import BSONModel
import CacheSyncCore
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import MongoBridge
import Prometheus
import RedisBridge
import ServiceLifecycle

/// The HTTP API on `http.listen` (docs/ARCHITECTURE.md §6, §7): read-through cache, `/metrics`, `/v1/stats`, `/healthz`,
/// `/readyz`. Runs in the sidecar's `ServiceGroup`; blocking Redis and MongoDB calls run on its own worker threads,
/// each with its own Redis connection.
public final class HTTPService: Service, Sendable {
    /// Worker threads (and Redis connections) for read-through requests.
    static let workerCount = 4

    let config: CacheSyncConfig
    let telemetry: Telemetry
    let registry: PrometheusCollectorRegistry
    let readThrough: ReadThrough
    let workers: BlockingWorkers
    let connections: [any RedisClient]
    let readiness: ReadinessProbe
    let logger: Logger
    /// The config in force: `/v1/cache` looks its collections up here at every request, so a reload is seen at once.
    let live: LiveConfig
    /// The bearer token `/v1/cache` requires (`http.api.tokenFile`), if any.
    let apiToken: APIToken?

    /// The service for the config in `live`; `registry` is the one `MetricsBootstrap` installed. The listening
    /// addresses, the token file and Redis are taken from the config at start (a reload that changes them is
    /// refused); the collections are looked up in `live` at every request.
    /// Throws when `http.api.tokenFile` cannot be read.
    public init(live: LiveConfig, pool: MongoClientPool, telemetry: Telemetry,
                registry: PrometheusCollectorRegistry, logger: Logger) throws {
        let config = live.current
        self.live = live
        apiToken = try config.http.apiTokenFile.map { file in try APIToken(file: file, logger: logger) }
        self.config = config
        self.telemetry = telemetry
        self.registry = registry
        self.logger = logger
        readThrough = ReadThrough(keyPrefix: config.redis.keyPrefix, colocatingDerivedKeys: config.redis.cluster != nil,
                                  pool: pool, telemetry: telemetry, settings: ReadThrough.Settings())
        workers = BlockingWorkers(count: Self.workerCount, name: "http redis")
        connections = (0..<Self.workerCount).map { _ in
            config.redisConnection(telemetry: telemetry)
        }
        readiness = ReadinessProbe(
            redis: config.redisConnection(connectTimeout: .milliseconds(500), commandTimeout: .milliseconds(500)),
            telemetry: telemetry, readyAfterWarmup: config.readyAfterWarmup)
    }

    /// Serves until graceful shutdown, then stops the worker threads.
    public func run() async throws {
        defer {
            workers.shutdown()
            readiness.shutdown()
            connections.forEach { $0.close() }
        }
        // With http.api.listen the read-through API has a listener of its own, and http.listen serves the rest.
        let http = config.http
        var listeners = [Listener(field: "http.listen", address: .init(host: http.host, port: http.port),
                                  name: "HTTP API", status: true, readThrough: http.apiAddress == nil)]
        if let api = http.apiAddress {
            listeners.append(Listener(field: "http.api.listen", address: api, name: "read-through API",
                                      status: false, readThrough: true))
        }
        let logger = logger
        let guarded = apiToken == nil ? "" : " (bearer token required)"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for listener in listeners {
                let running = "\(listener.name) listening on \(listener.address)\(listener.readThrough ? guarded : "")"
                let app = Application(
                    router: makeRouter(status: listener.status, readThrough: listener.readThrough),
                    server: .http1(configuration: Self.limits),
                    configuration: ApplicationConfiguration(
                        address: .hostname(listener.address.host, port: listener.address.port), serverName: "cachesync"),
                    onServerRunning: { _ in logger.info("\(running)") },
                    logger: logger)
                group.addTask {
                    do {
                        try await app.run()
                    } catch {
                        throw HTTPListenError(description: "\(listener.field) \(listener.address): cannot serve the \(listener.name) (\(error))")
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// What one connection may cost: every route is a `GET` whose request fits in a few hundred bytes, so headers
    /// are held to 8 KiB each and 16 KiB in all (64 at most; beyond that the request is refused, 431), and a
    /// connection idle for 30 s is closed. No route reads a body.
    static let limits = HTTP1Channel.Configuration(
        idleTimeout: .seconds(30),
        httpDecoderConfiguration: .init(maxHeaderFieldSize: 8 * 1024, maxHeaderListSize: 16 * 1024, maxHeaderFieldCount: 64))

    /// One listening address and the routes it serves.
    private struct Listener: Sendable {
        let field: String
        let address: HTTPSettings.Address
        let name: String
        /// `/healthz`, `/readyz`, `/metrics`, `/v1/stats`.
        let status: Bool
        /// `/v1/cache`.
        let readThrough: Bool
    }

    /// The HTTP API could not listen (address in use, no permission, …).
    struct HTTPListenError: Error, CustomStringConvertible {
        let description: String
    }
}
