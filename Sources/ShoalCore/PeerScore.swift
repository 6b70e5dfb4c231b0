/// How good a holder is to download from: the expected time to get one chunk
/// from it, inflated by its record of failures. **Lower is better.**
///
/// ```
/// score = (responseTime + chunkSize / throughput) × reputation × 1.25^liveFailures
/// reputation = 1 + 4 × failures / (downloads + failures + 2)
/// ```
///
/// The original ranked holders by `responseTime × 0.75^downloads × 1.25^failures`.
/// Shoal keeps its spirit (measured time first, a bad record costs, a good one
/// helps) but not its unbounded exponents, under which a holder with 50
/// successful downloads outranks one a million times faster. Instead:
///
/// - **Time** is what the downloader measures: the CheckActive round trip
///   before the download, then each chunk's round trip and the throughput of
///   the bytes it brings (exponentially weighted, so the score follows the
///   holder as it speeds up or slows down).
/// - **Reputation** comes from the tracker's counters as a smoothed failure
///   ratio: a fresh holder has factor 1, one that failed half its transfers
///   about 3, one that always fails up to 5; successes only dilute failures.
/// - **Live failures** in this download multiply by the original's 1.25 each.
public struct PeerScore: Sendable, Equatable {
    /// Smoothed round trip, in seconds.
    public private(set) var responseTime: Double
    /// Smoothed throughput of chunk replies, in bytes per second (nil until
    /// measured): the inverse of the smoothed time per byte.
    public private(set) var throughput: Double?
    /// The tracker's counters for this holder.
    public var countDownloads: Int
    public var countFailures: Int
    /// Failures in this download.
    public private(set) var liveFailures = 0
    /// Chunks received from it in this download.
    public private(set) var liveSuccesses = 0

    /// The weight of a new measurement in the moving averages.
    public static let smoothing = 0.3

    public init(responseTime: Double, countDownloads: Int = 0, countFailures: Int = 0) {
        self.responseTime = max(responseTime, 0.000_01)
        self.countDownloads = max(0, countDownloads)
        self.countFailures = max(0, countFailures)
    }

    /// The tracker record's factor: 1 for a clean record, up to 5.
    public var reputation: Double {
        1 + 4 * Double(countFailures) / Double(countDownloads + countFailures + 2)
    }

    /// The expected seconds to fetch a chunk of `chunkSize` bytes, weighted by record. Lower is better.
    public func value(chunkSize: Int) -> Double {
        var time = responseTime
        if let throughput, throughput > 0 { time += Double(chunkSize) / throughput }
        return time * reputation * pow125(liveFailures)
    }

    /// A round trip measured (CheckActive), in seconds.
    public mutating func observeRoundTrip(_ seconds: Double) {
        responseTime = Self.blend(responseTime, max(seconds, 0.000_01))
    }

    /// A chunk of `bytes` arrived `seconds` after it was asked for.
    ///
    /// What is smoothed is the time per byte, not the rate: a link that
    /// delivers in bursts (a loss recovered, then several chunks at once)
    /// would otherwise look as fast as its bursts, since a mean of rates
    /// weighs the short gaps most.
    public mutating func observeChunk(bytes: Int, seconds: Double) {
        let seconds = max(seconds, 0.000_01)
        liveSuccesses += 1
        let perByte = seconds / Double(max(bytes, 1))
        throughput = 1 / (throughput.map { Self.blend(1 / $0, perByte) } ?? perByte)
    }

    /// A failure in this download (bad hash, bad frame, timeout).
    public mutating func observeFailure() {
        liveFailures += 1
    }

    private static func blend(_ old: Double, _ new: Double) -> Double {
        old * (1 - smoothing) + new * smoothing
    }

    private func pow125(_ n: Int) -> Double {
        var value = 1.0
        for _ in 0..<min(n, 64) { value *= 1.25 }
        return value
    }
}
