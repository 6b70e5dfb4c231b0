/// Slows down password guessing: after ``freeAttempts`` failed logins for one
/// name, each further attempt must wait, the wait doubling with each failure
/// (1 s, 2 s, 4 s ... up to ``maximumDelay``). A success clears the record.
///
/// A value fed events with the time passed in, so it is tested without
/// sleeping. Bounded: it forgets the oldest names past ``capacity``.
public struct LoginThrottle: Sendable {
    public var freeAttempts: Int
    public var maximumDelay: Double
    public var capacity: Int

    private struct Record: Sendable {
        var failures: Int
        var lastFailure: Double
    }

    private var records: [String: Record] = [:]

    public init(freeAttempts: Int = 5, maximumDelay: Double = 300, capacity: Int = 100_000) {
        self.freeAttempts = freeAttempts
        self.maximumDelay = maximumDelay
        self.capacity = capacity
    }

    /// Seconds `user` must still wait before trying again at time `now`, or 0.
    public func wait(user: String, now: Double) -> Int {
        guard let record = records[user], record.failures >= freeAttempts else { return 0 }
        let delay = min(maximumDelay, Double(1 << min(record.failures - freeAttempts, 20)))
        let remaining = record.lastFailure + delay - now
        return remaining > 0 ? Int(remaining.rounded(.up)) : 0
    }

    /// Records a failed login for `user` at `now`.
    public mutating func failed(user: String, now: Double) {
        if records[user] == nil && records.count >= capacity {
            // Forget the oldest failure to stay bounded.
            if let oldest = records.min(by: { $0.value.lastFailure < $1.value.lastFailure })?.key {
                records.removeValue(forKey: oldest)
            }
        }
        var record = records[user] ?? Record(failures: 0, lastFailure: now)
        record.failures += 1
        record.lastFailure = now
        records[user] = record
    }

    /// Records a successful login: the slate is clean.
    public mutating func succeeded(user: String) {
        records.removeValue(forKey: user)
    }

    /// The number of names with failures on record.
    public var trackedNames: Int { records.count }
}
