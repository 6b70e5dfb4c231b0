/// A token bucket, as a value fed the time: what paces a rate limit.
///
/// It holds up to `burst` bytes of tokens, refilled at `rate` bytes per
/// second. ``take(_:now:)`` always takes what it is asked for, even more
/// than the bucket holds: the bucket goes into debt, and the taker is told
/// how long to wait until the debt is paid off. So a chunk larger than the
/// burst still passes, takers queue in the order they came (each one's wait
/// includes the debts of those before it), and waking up late loses no
/// budget while takers are queued (only a full bucket stops refilling).
/// Over any span of `t` seconds at most `burst + rate × t` bytes go.
///
/// Time is seconds from any fixed origin; it reads no clock, so it is tested
/// without sleeping.
public struct TokenBucket: Sendable, Equatable {
    /// Bytes per second.
    public let rate: Double
    /// The most tokens it holds: what may go at once after a pause.
    public let burst: Double
    /// Tokens now (as of the last call); negative while in debt.
    public private(set) var tokens: Double
    private var last: Double?

    /// A full bucket.
    public init(rate: Double, burst: Int) {
        precondition(rate > 0 && rate.isFinite && burst > 0, "a bucket needs a rate and a burst above zero")
        self.rate = rate
        self.burst = Double(burst)
        self.tokens = Double(burst)
    }

    /// Takes `bytes` at `now`; returns the seconds to wait before sending them (0: at once).
    public mutating func take(_ bytes: Int, now: Double) -> Double {
        refill(now: now)
        tokens -= Double(bytes)
        return tokens >= 0 ? 0 : -tokens / rate
    }

    /// Gives back `bytes` taken and not sent (a cancelled request, a reply
    /// smaller than reckoned), up to a full bucket.
    public mutating func giveBack(_ bytes: Int, now: Double) {
        refill(now: now)
        tokens = min(burst, tokens + Double(bytes))
    }

    private mutating func refill(now: Double) {
        if let last, now > last { tokens = min(burst, tokens + (now - last) * rate) }
        last = max(last ?? now, now)
    }
}
