import ShoalTestSupport
import ShoalWire
import Testing

@Suite("zlib compression")
struct CompressionTests {
    static let text = Array(String(repeating: "2026-11-27T10:00:00Z INFO chunk verified peer=maria\n", count: 500).utf8)

    /// Deflate then inflate gives the input back; one deflater and inflater serve many chunks.
    @Test func roundTripReusingStreams() throws {
        let deflater = Deflater(level: 1)
        let inflater = Inflater()
        var generator = SeededGenerator(seed: 3)
        for input in [Self.text, generator.bytes(5000), [], [7]] {
            let compressed = deflater.compress(input)
            #expect(compressed.first == 0x78, "an RFC 1950 stream starts with 0x78")
            #expect(try inflater.inflate(compressed, declaredSize: input.count) == input)
        }
        #expect(deflater.compress(Self.text).count < Self.text.count / 5)
    }

    /// A stream that inflates past its declared size (a zip bomb) is stopped at the bound.
    @Test func zipBombIsStopped() {
        let bomb = Deflater(level: 9).compress([UInt8](repeating: 0, count: 8 << 20))
        #expect(bomb.count < 20_000)
        #expect(throws: WireError.inflatedPastDeclaredSize(declared: 4096)) {
            try Inflater().inflate(bomb, declaredSize: 4096)
        }
        #expect(throws: WireError.inflatedPastDeclaredSize(declared: 0)) {
            try Inflater().inflate(Deflater(level: 1).compress([1]), declaredSize: 0)
        }
    }

    /// A stream that ends early gives "inflated short".
    @Test func shortStream() {
        let compressed = Deflater(level: 1).compress(Self.text)
        #expect(throws: WireError.inflatedShort(declared: Self.text.count + 10, actual: Self.text.count)) {
            try Inflater().inflate(compressed, declaredSize: Self.text.count + 10)
        }
    }

    /// Corrupt, truncated and trailing-garbage streams are refused with a typed error.
    @Test func corruptStreams() throws {
        let inflater = Inflater()
        var compressed = Deflater(level: 1).compress(Self.text)
        let truncated = Array(compressed.dropLast(30))
        #expect(throws: WireError.self) { try inflater.inflate(truncated, declaredSize: Self.text.count) }
        let withTrailer = compressed + [1, 2, 3]
        #expect(throws: WireError.corruptCompressedData(reason: "3 bytes follow the end of the zlib stream")) {
            try inflater.inflate(withTrailer, declaredSize: Self.text.count)
        }
        for i in 10..<40 { compressed[i] ^= 0xA5 }
        #expect(throws: WireError.self) { try inflater.inflate(compressed, declaredSize: Self.text.count) }
        #expect(throws: WireError.self) { try inflater.inflate([0x78, 0x01, 0xFF], declaredSize: 10) }
        #expect(throws: WireError.self) { try inflater.inflate([], declaredSize: 10) }
        // The inflater still works after errors.
        let again = Deflater(level: 1).compress(Self.text)
        let restored = try inflater.inflate(again, declaredSize: Self.text.count)
        #expect(restored == Self.text)
    }
}
