import Metrics
import ShoalWire

/// What the tracker counts and times, through swift-metrics: the library
/// names each metric once here and never knows where it goes (the
/// executable's `--http` sends them to a Prometheus registry; without a
/// factory they go to `MetricsSystem.factory`, a no-op unless bootstrapped).
///
/// Label values come from closed sets (message types, a few outcomes and
/// store operations), so the number of series is bounded whatever the
/// network sends.
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `shoal_tracker_requests_total` | counter | `type`, `result` (`ok`, `refused`) |
/// | `shoal_tracker_request_duration_seconds` | histogram | `type` |
/// | `shoal_tracker_connected_peers` | gauge | |
/// | `shoal_tracker_files` | gauge (contents held by someone) | |
/// | `shoal_tracker_logins_total` | counter | |
/// | `shoal_tracker_failed_logins_total` | counter | `reason` (`bad_credentials`, `throttled`) |
/// | `shoal_tracker_reported_bytes_total` | counter | `outcome` (`success`, `failure`) |
/// | `shoal_tracker_store_duration_seconds` | histogram | `operation` |
struct TrackerMetrics: Sendable {

    private struct RequestMetrics: Sendable {
        let ok: Counter
        let refused: Counter
        let duration: Timer
    }

    private let requests: [MessageType: RequestMetrics]
    private let otherRequests: RequestMetrics
    private let store: [StoreOperation: Timer]
    private let connected: Gauge
    private let files: Gauge
    private let logins: Counter
    private let badCredentials: Counter
    private let throttled: Counter
    private let reportedSuccess: Counter
    private let reportedFailure: Counter

    /// Metrics made by `factory`, or by `MetricsSystem.factory` when nil.
    init(factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        func requestMetrics(_ type: String) -> RequestMetrics {
            RequestMetrics(
                ok: Counter(label: "shoal_tracker_requests_total", dimensions: [("type", type), ("result", "ok")], factory: factory),
                refused: Counter(label: "shoal_tracker_requests_total", dimensions: [("type", type), ("result", "refused")], factory: factory),
                duration: Timer(label: "shoal_tracker_request_duration_seconds", dimensions: [("type", type)], factory: factory))
        }
        // Made once for every type a client may send, so no request makes a new series.
        var requests: [MessageType: RequestMetrics] = [:]
        for type in Self.servedTypes { requests[type] = requestMetrics("\(type)") }
        self.requests = requests
        self.otherRequests = requestMetrics("other")
        var store: [StoreOperation: Timer] = [:]
        for operation in StoreOperation.allCases {
            store[operation] = Timer(label: "shoal_tracker_store_duration_seconds", dimensions: [("operation", operation.metricLabel)], factory: factory)
        }
        self.store = store
        connected = Gauge(label: "shoal_tracker_connected_peers", factory: factory)
        files = Gauge(label: "shoal_tracker_files", factory: factory)
        logins = Counter(label: "shoal_tracker_logins_total", factory: factory)
        badCredentials = Counter(label: "shoal_tracker_failed_logins_total", dimensions: [("reason", "bad_credentials")], factory: factory)
        throttled = Counter(label: "shoal_tracker_failed_logins_total", dimensions: [("reason", "throttled")], factory: factory)
        reportedSuccess = Counter(label: "shoal_tracker_reported_bytes_total", dimensions: [("outcome", "success")], factory: factory)
        reportedFailure = Counter(label: "shoal_tracker_reported_bytes_total", dimensions: [("outcome", "failure")], factory: factory)
    }

    /// The requests ``Tracker`` serves; anything else is counted as `other`.
    static let servedTypes: [MessageType] = [.register, .login, .logout, .announce, .list, .details, .manifest, .report, .status]

    /// One request of `type` answered after `duration`.
    func request(_ type: MessageType, refused: Bool, duration: Duration) {
        let metrics = requests[type] ?? otherRequests
        (refused ? metrics.refused : metrics.ok).increment()
        metrics.duration.recordNanoseconds(duration.nanoseconds)
    }

    /// One store operation took `duration`: the ``StoreTiming`` a store is
    /// opened with when the tracker has metrics.
    func stored(_ operation: StoreOperation, duration: Duration) {
        store[operation]!.recordNanoseconds(duration.nanoseconds)
    }

    /// ``stored(_:duration:)`` as a store's timing hook.
    var storeTiming: StoreTiming {
        { [self] operation, duration, _ in stored(operation, duration: duration) }
    }

    /// The registry's size after a change.
    func registry(connected: Int, files: Int) {
        self.connected.record(connected)
        self.files.record(files)
    }

    /// A login that proved its password.
    func loginSucceeded() { logins.increment() }

    /// A login refused for a wrong name or password, or refused unheard while throttled.
    func loginFailed(throttled: Bool) { (throttled ? self.throttled : badCredentials).increment() }

    /// A report's verified bytes, by outcome.
    func reported(bytes: UInt64, succeeded: Bool) {
        (succeeded ? reportedSuccess : reportedFailure).increment(by: Int64(clamping: bytes))
    }
}

extension Duration {
    /// The whole nanoseconds in this duration, clamped to `Int64`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : product &+ attoseconds / 1_000_000_000
    }
}

extension StoreOperation {
    /// The `operation` label of `shoal_tracker_store_duration_seconds`.
    var metricLabel: String {
        switch self {
        case .createAccount: "create"
        case .account: "account"
        case .recordReport: "record_report"
        case .accountCount: "count"
        case .counters: "counters"
        case .sessionOpened: "session_opened"
        case .sessionClosed: "session_closed"
        case .holdingsChanged: "holdings_changed"
        case .renewLeases: "renew_leases"
        case .expireSessions: "expire_sessions"
        case .liveRegistry: "live_registry"
        case .remoteSessions: "remote_sessions"
        case .contents: "contents"
        case .mapVersions: "map_versions"
        }
    }
}
