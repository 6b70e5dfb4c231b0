import Metrics
import Prometheus

/// The Prometheus side of the tracker's metrics: a registry of its own (not
/// the process-wide default, so two trackers in one test process never mix
/// their figures) and the swift-metrics factory that fills it. Give
/// ``factory`` to the tracker (``ShoalTracker/TrackerConfiguration/metricsFactory``)
/// and serve ``exposition()`` at `/metrics`.
public struct OperatorMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: any MetricsFactory

    /// Histogram buckets for tracker requests and store calls: from 50 µs
    /// (a `list` served from cache) to 5 s (a register under load waits for
    /// its password hash).
    public static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5),
    ]

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets
        self.registry = registry
        self.factory = factory
    }

    /// The Prometheus text exposition of every metric, as bytes.
    public func exposition() -> [UInt8] {
        registry.emitToBuffer()
    }
}
