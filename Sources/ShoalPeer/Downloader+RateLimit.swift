import ShoalCore

extension Downloader.Configuration {
    /// These settings with every download drawing on one budget of `rate`
    /// (nil: unchanged). Holders are then expected to deliver no faster than
    /// the budget before their first chunk: the plan's first deadlines are
    /// reckoned from that, so a holder is not taken for silent while its
    /// requests wait their turn here.
    func limited(to rate: TransferRate?) -> Downloader.Configuration {
        guard let rate else { return self }
        var limited = self
        limited.downloadLimit = RateLimiter(rate: rate)
        limited.plan.assumedThroughput = min(plan.assumedThroughput, rate.bytesPerSecond)
        return limited
    }
}
