import ShoalCore
import Testing

@Suite("Token bucket")
struct TokenBucketTests {
    /// A full bucket lets its burst go at once; the next take waits for its own bytes.
    @Test func burstThenPaced() {
        var bucket = TokenBucket(rate: 1000, burst: 500)
        #expect(bucket.take(500, now: 0) == 0)
        #expect(bucket.take(250, now: 0) == 0.25)
        // Half a second later 500 more tokens came; 250 of them paid the debt.
        #expect(bucket.take(250, now: 0.5) == 0)
        #expect(bucket.tokens == 0)
    }

    /// Takers at the same moment queue: each waits for the debts before it too.
    @Test func queuedTakersWaitInTurn() {
        var bucket = TokenBucket(rate: 1000, burst: 100)
        #expect(bucket.take(100, now: 10) == 0)
        #expect(bucket.take(1000, now: 10) == 1)
        #expect(bucket.take(1000, now: 10) == 2)
        #expect(bucket.take(500, now: 11) == 1.5)
    }

    /// A take larger than the burst passes, into debt, after the time its excess takes.
    @Test func largerThanBurst() {
        var bucket = TokenBucket(rate: 1000, burst: 100)
        #expect(bucket.take(1100, now: 0) == 1)
        #expect(bucket.tokens == -1000)
        // The debt is paid off at t = 1; then the bucket refills, up to its burst only.
        #expect(bucket.take(0, now: 1) == 0)
        #expect(bucket.take(0, now: 60) == 0)
        #expect(bucket.tokens == 100)
    }

    /// Over a long run the bytes that went are at most burst + rate × time.
    @Test func longRunRate() {
        var bucket = TokenBucket(rate: 1_000_000, burst: 65_536)
        var now = 0.0
        var sent = 0
        // A taker that wakes up 1 ms late every time loses no budget while it queues.
        for _ in 0..<1000 {
            now += bucket.take(262_144, now: now) + 0.001
            sent += 262_144
        }
        let ideal = Double(sent - 65_536) / 1_000_000 + 0.001
        #expect(abs(now - ideal) < 1e-6, "took \(now) s for \(sent) bytes")
    }

    /// Bytes given back shorten the next wait, and never overfill the bucket.
    @Test func giveBack() {
        var bucket = TokenBucket(rate: 1000, burst: 100)
        #expect(bucket.take(600, now: 0) == 0.5)
        bucket.giveBack(400, now: 0)
        #expect(bucket.take(100, now: 0) == 0.2)
        bucket.giveBack(10_000, now: 0)
        #expect(bucket.tokens == 100)
    }

    /// Time that runs backwards adds nothing.
    @Test func timeBackwards() {
        var bucket = TokenBucket(rate: 1000, burst: 100)
        #expect(bucket.take(100, now: 5) == 0)
        #expect(bucket.take(100, now: 4) == 0.1)
        #expect(bucket.take(0, now: 5) == 0.1)
    }
}
