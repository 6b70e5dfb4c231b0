import ShoalCore
import Testing

/// Stored or compressed, by measuring both.
@Suite("Compression choice")
struct CompressionChoiceTests {
    /// Completes `count` chunks of 1 MB at `rate` bytes per second from `now`; returns the time after.
    @discardableResult
    func feed(_ choice: inout CompressionChoice, _ count: Int, rate: Double, compressed: Bool, inFlight: Int = 2, from now: Double) -> Double {
        var t = now
        for _ in 0..<count {
            t += 1e6 / rate
            choice.completed(bytes: 1_000_000, compressed: compressed, inFlight: inFlight, now: t)
        }
        return t
    }

    /// Slow links: compressed completes four times faster than stored, and is kept.
    @Test func slowLinksKeepCompression() {
        var choice = CompressionChoice()
        #expect(!choice.asksStored, "compressed first")
        var t = feed(&choice, CompressionChoice.warmUpChunks, rate: 5e6, compressed: true, from: 0)   // pipelines filling: not counted
        t = feed(&choice, CompressionChoice.probeChunks, rate: 110e6, compressed: true, from: t)
        #expect(choice.asksStored, "then stored")
        t = feed(&choice, 2, rate: 110e6, compressed: true, from: t)   // asked before the switch: not counted
        #expect(choice.asksStored)
        feed(&choice, CompressionChoice.probeChunks, rate: 25e6, compressed: false, from: t)
        #expect(!choice.asksStored, "compressed completed 4 times more: kept")
    }

    /// A fast link where inflating is the limit: stored completes more and is kept;
    /// data that does not compress stays stored.
    @Test func fastLinksKeepStored() {
        var choice = CompressionChoice()
        var t = feed(&choice, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 400e6, compressed: true, from: 0)
        feed(&choice, 2 + CompressionChoice.probeChunks, rate: 700e6, compressed: false, from: t)
        #expect(choice.asksStored)
        var random = CompressionChoice()
        t = feed(&random, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 30e6, compressed: false, from: 0)
        feed(&random, 2 + CompressionChoice.probeChunks, rate: 20e6, compressed: false, from: t)
        #expect(random.asksStored, "nothing came compressed")
    }

    /// A decision is measured again after a while; the user's choice overrides everything.
    @Test func retriesAndUserChoice() {
        var choice = CompressionChoice()
        var t = feed(&choice, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 400e6, compressed: true, from: 0)
        t = feed(&choice, 2 + CompressionChoice.probeChunks, rate: 700e6, compressed: false, from: t)
        #expect(choice.asksStored)
        t = feed(&choice, 1, rate: 1e6, compressed: false, from: t + CompressionChoice.retrySeconds)
        t = feed(&choice, CompressionChoice.probeChunks, rate: 20e6, compressed: false, from: t)
        #expect(!choice.asksStored, "stored measured again, now compressed")
        feed(&choice, 2 + CompressionChoice.probeChunks, rate: 90e6, compressed: true, from: t)
        #expect(!choice.asksStored, "the link got slow: compressed now wins")
        #expect(!CompressionChoice(mode: .always).asksStored)
        #expect(CompressionChoice(mode: .never).asksStored)
    }
}
