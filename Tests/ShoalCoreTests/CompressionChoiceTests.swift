import ShoalCore
import Testing

/// Stored or compressed, per holder, from the link's speed against the inflate budget.
@Suite("Compression choice")
struct CompressionChoiceTests {
    func ask(_ choice: inout CompressionChoice, peer: Int, throughput: Double?, activeHolders: Int) -> Bool {
        choice.asksStored(peer: peer, throughput: throughput, activeHolders: activeHolders)
    }

    /// A holder is first asked for stored chunks; a link slower than its share
    /// of the inflate budget then gets compressed ones, a faster one stays
    /// stored; the 80–90 % gap stops flapping.
    @Test func fastLinksGetStoredChunks() {
        var choice = CompressionChoice(inflateRate: 400e6, cores: 2)   // 800 MB/s in all
        // Four holders: a share of 200 MB/s each.
        #expect(ask(&choice, peer: 1, throughput: nil, activeHolders: 4) == true, "stored until measured")
        #expect(ask(&choice, peer: 1, throughput: 25e6, activeHolders: 4) == false, "a 200 Mbit/s link: compressed")
        choice.received(from: 1, raw: 1000, wire: 200)
        #expect(ask(&choice, peer: 1, throughput: 125e6, activeHolders: 4) == false, "25 MB/s on the wire: stays compressed")
        #expect(ask(&choice, peer: 2, throughput: 170e6, activeHolders: 4) == true, "85 %: stays stored")
        #expect(ask(&choice, peer: 2, throughput: 150e6, activeHolders: 4) == false, "75 %: compressed")
        choice.received(from: 2, raw: 1000, wire: 1000)
        #expect(ask(&choice, peer: 2, throughput: 170e6, activeHolders: 4) == false, "85 % on the wire: stays compressed")
        #expect(ask(&choice, peer: 2, throughput: 190e6, activeHolders: 4) == true, "95 %: back to stored")
        #expect(ask(&choice, peer: 3, throughput: 700e6, activeHolders: 1) == true, "loopback: stored")
    }

    /// The inflate rate follows what compressed chunks measure.
    @Test func inflateRateIsMeasured() {
        var choice = CompressionChoice(inflateRate: 400e6, cores: 1)
        for _ in 0..<30 { choice.inflated(bytes: 1_000_000, seconds: 0.01) }   // 100 MB/s
        #expect(abs(choice.inflateRate - 100e6) < 1e6)
        #expect(ask(&choice, peer: 1, throughput: 85e6, activeHolders: 1))
    }
}
