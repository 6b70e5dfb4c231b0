import ShoalCore
import Synchronization

/// One budget of bytes per second, shared by every connection of a peer that
/// draws on it: one for all uploads (``PeerServer`` takes each chunk reply's
/// wire bytes before writing it), one for all downloads (``ChunkFetch`` takes
/// a chunk's expected wire bytes before asking for it, so requests are spaced
/// to the rate and the replies follow).
///
/// A ``TokenBucket`` behind a mutex, read against a monotonic clock. The
/// burst is small (64 KiB by default) so that the rate holds over short
/// spans too: a chunk larger than it still passes, by taking the bucket into
/// debt and waiting it off, which also paces the first chunk after a pause.
public final class RateLimiter: Sendable {
    public let rate: TransferRate
    private let bucket: Mutex<TokenBucket>
    private let clock = ContinuousClock()
    private let epoch: ContinuousClock.Instant

    public static let defaultBurst = 64 * 1024
    /// A seeder's burst: one default-sized chunk reply. A smaller one would
    /// hold every chunk of an upload that is not the bottleneck back by the
    /// time its excess takes (0.375 s for 256 KiB at 512 KiB/s), and that
    /// latency made downloaders that limit too lose about 6 % of their rate.
    public static let uploadBurst = Int(ChunkSizing.minimumDefault) + 64

    public init(rate: TransferRate, burst: Int = RateLimiter.defaultBurst) {
        self.rate = rate
        self.bucket = Mutex(TokenBucket(rate: rate.bytesPerSecond, burst: burst))
        self.epoch = clock.now
    }

    private var now: Double { (clock.now - epoch).seconds }

    /// Takes `bytes` from the budget and waits until they may go. Cancelled
    /// while waiting, it gives them back (they will not be sent) and throws.
    public func acquire(_ bytes: Int) async throws(CancellationError) {
        let delay = bucket.withLock { $0.take(bytes, now: now) }
        guard delay > 0 else { return }
        do {
            try await Task.sleep(for: .seconds(delay))
        } catch {
            refund(bytes)
            throw CancellationError()
        }
    }

    /// Settles bytes acquired ahead against the bytes that really went: a
    /// compressed chunk or a refusal gives the difference back, a larger
    /// reply takes the rest (without waiting: whoever acquires next does).
    public func settle(acquired: Int, used: Int) {
        if used < acquired {
            refund(acquired - used)
        } else if used > acquired {
            bucket.withLock { _ = $0.take(used - acquired, now: now) }
        }
    }

    /// Gives back bytes acquired and not sent.
    public func refund(_ bytes: Int) {
        bucket.withLock { $0.giveBack(bytes, now: now) }
    }
}
