import ShoalCore
import Testing

/// Stored or compressed, by measuring both.
@Suite("Compression choice")
struct CompressionChoiceTests {
    /// Completes `count` chunks of 10 MB at `rate` bytes per second from `now`; returns the time after.
    @discardableResult
    /// `load` is the cores busy meanwhile.
    func feed(_ choice: inout CompressionChoice, _ count: Int, rate: Double, compressed: Bool, inFlight: Int = 2, from now: Double,
              load: Double = 2) -> Double {
        var t = now
        for _ in 0..<count {
            t += 1e7 / rate
            // CPU seconds as if `load` cores had been busy from the start.
            choice.completed(bytes: 10_000_000, compressed: compressed, inFlight: inFlight, now: t, cpuSeconds: t * load)
        }
        return t
    }


    /// Compressed chunks came while the CPU had room: the links are the limit, no stored probe.
    @Test func idleCPUKeepsCompressionAtOnce() {
        var choice = CompressionChoice(cores: 2)
        let t = feed(&choice, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 150e6, compressed: true, from: 0, load: 0.4)
        #expect(!choice.asksStored, "kept compressed without trying stored")
        feed(&choice, 30, rate: 150e6, compressed: true, from: t, load: 0.4)
        #expect(!choice.asksStored)
    }

    /// Slow links: compressed completes four times faster than stored, and is kept.
    @Test func slowLinksKeepCompression() {
        var choice = CompressionChoice(cores: 2)
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
        var choice = CompressionChoice(cores: 2)
        var t = feed(&choice, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 400e6, compressed: true, from: 0)
        feed(&choice, 2 + CompressionChoice.probeChunks, rate: 700e6, compressed: false, from: t)
        #expect(choice.asksStored)
        var random = CompressionChoice(cores: 2)
        t = feed(&random, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 30e6, compressed: false, from: 0)
        feed(&random, 2 + CompressionChoice.probeChunks, rate: 20e6, compressed: false, from: t)
        #expect(random.asksStored, "nothing came compressed")
    }

    /// A near link (loopback, a LAN) whose stored chunks come faster than this
    /// machine inflates: stored first, and compressed never asked for.
    @Test func nearFastLinkNeverProbesCompressed() {
        var choice = CompressionChoice(cores: 2, inflateCapacity: 600e6)
        choice.connected(roundTrip: 0.000_2)
        choice.connected(roundTrip: 0.05)   // a later, far holder changes nothing
        #expect(choice.asksStored, "stored first")
        var t = feed(&choice, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 900e6, compressed: false, from: 0)
        #expect(choice.asksStored, "faster than inflating: decided without a compressed probe")
        t = feed(&choice, 100, rate: 900e6, compressed: false, from: t)
        #expect(choice.asksStored)
    }

    /// The inflate capacity is measured while the first chunks come: a
    /// stored probe that ends first measures on, and the capacity, once it
    /// comes, settles it as if it had been known from the start.
    @Test func nearLinkWaitsForTheCalibration() {
        var choice = CompressionChoice(cores: 2, awaitingCalibration: true)
        #expect(choice.awaitingCalibration && choice.inflateCapacity == nil)
        choice.connected(roundTrip: 0.000_2)
        var t = feed(&choice, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 900e6, compressed: false, from: 0)
        #expect(choice.asksStored, "stored measured on while the capacity is unknown")
        t = feed(&choice, 10, rate: 900e6, compressed: false, from: t)
        #expect(choice.asksStored)
        choice.calibrated(600e6)
        #expect(!choice.awaitingCalibration)
        t = feed(&choice, 1, rate: 900e6, compressed: false, from: t)
        t = feed(&choice, 100, rate: 900e6, compressed: false, from: t)
        #expect(choice.asksStored, "faster than inflating: decided without a compressed probe")

        // Slower than the capacity, once known: compressed is measured next.
        var slower = CompressionChoice(cores: 2, awaitingCalibration: true)
        slower.connected(roundTrip: 0.000_3)
        t = feed(&slower, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 110e6, compressed: false, from: 0)
        #expect(slower.asksStored)
        slower.calibrated(600e6)
        feed(&slower, 1, rate: 110e6, compressed: false, from: t)
        #expect(!slower.asksStored, "slower than inflating: compressed measured next")
    }

    /// A near but slower link (a gigabit LAN): stored first, then compressed is
    /// measured, and kept where it completes more.
    @Test func nearSlowLinkStillTriesCompressed() {
        var choice = CompressionChoice(cores: 2, inflateCapacity: 600e6)
        choice.connected(roundTrip: 0.000_3)
        var t = feed(&choice, CompressionChoice.warmUpChunks + CompressionChoice.probeChunks, rate: 110e6, compressed: false, from: 0)
        #expect(!choice.asksStored, "slower than inflating: compressed measured next")
        t = feed(&choice, 2, rate: 110e6, compressed: false, from: t)   // asked before the switch
        feed(&choice, CompressionChoice.probeChunks, rate: 400e6, compressed: true, from: t)
        #expect(!choice.asksStored, "compressed completed more: kept")
    }

    /// A far first holder: compressed first, as over slow links.
    @Test func farLinkStartsCompressed() {
        var choice = CompressionChoice(cores: 2, inflateCapacity: 600e6)
        choice.connected(roundTrip: 0.02)
        #expect(!choice.asksStored)
    }

    /// A decision is measured again after a while; the user's choice overrides everything.
    @Test func retriesAndUserChoice() {
        var choice = CompressionChoice(cores: 2)
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
