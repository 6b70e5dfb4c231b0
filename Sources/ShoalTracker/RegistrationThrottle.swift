/// Makes free accounts cost time: each source address (an IPv6 one by its
/// /64, as ``LoginThrottle/source(of:)`` counts it) may register ``burst``
/// accounts at once, then one more every ``interval`` seconds. Every defence
/// that weighs accounts (reports, sessions per account) assumes accounts
/// are not free by the thousand.
///
/// A token bucket per source, fed the time, so it is tested without
/// sleeping. Bounded: past ``capacity`` sources it forgets those whose
/// buckets have refilled, then the oldest.
public struct RegistrationThrottle: Sendable {
    public var burst: Double
    public var interval: Double
    public var capacity: Int

    private struct Bucket: Sendable {
        var tokens: Double
        var updated: Double
    }
    private var buckets: [String: Bucket] = [:]

    /// `burst` registrations at once from one source, then one per `interval` seconds.
    public init(burst: Int = 20, interval: Double = 60, capacity: Int = 100_000) {
        self.burst = Double(max(1, burst))
        self.interval = max(0.001, interval)
        self.capacity = capacity
    }

    /// Takes one registration for `address` at `now`: 0 if allowed (and
    /// counted), else the whole seconds to wait.
    public mutating func take(address: String, now: Double) -> Int {
        let source = LoginThrottle.source(of: address)
        var bucket = buckets[source] ?? Bucket(tokens: burst, updated: now)
        bucket.tokens = min(burst, bucket.tokens + max(0, now - bucket.updated) / interval)
        bucket.updated = now
        guard bucket.tokens >= 1 else {
            buckets[source] = bucket
            return Int(((1 - bucket.tokens) * interval).rounded(.up))
        }
        bucket.tokens -= 1
        buckets[source] = bucket
        if buckets.count > capacity { forget(now: now) }
        return 0
    }

    /// Gives back a registration that did not happen (a taken name, a bad password).
    public mutating func refund(address: String) {
        let source = LoginThrottle.source(of: address)
        guard var bucket = buckets[source] else { return }
        bucket.tokens = min(burst, bucket.tokens + 1)
        buckets[source] = bucket
    }

    /// Sources on record.
    public var trackedSources: Int { buckets.count }

    private mutating func forget(now: Double) {
        buckets = buckets.filter { _, bucket in bucket.tokens + (now - bucket.updated) / interval < burst }
        while buckets.count > capacity, let oldest = buckets.min(by: { $0.value.updated < $1.value.updated })?.key {
            buckets.removeValue(forKey: oldest)
        }
    }
}
