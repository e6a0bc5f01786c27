import Metrics
import Prometheus

/// Routes swift-metrics into a Prometheus registry that `/metrics` emits.
public enum MetricsBootstrap {
    /// Buckets of `cachesync_apply_seconds`, one batch's apply time.
    static let applyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// Bootstraps the process-wide `MetricsSystem` (once per process) and returns the registry behind it.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["cachesync_apply_seconds"] = applyBuckets
        MetricsSystem.bootstrap(factory)
        return registry
    }
}
