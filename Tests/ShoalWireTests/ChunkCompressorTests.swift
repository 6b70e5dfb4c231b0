import NIOCore
import ShoalCore
import ShoalTestSupport
import ShoalWire
import Testing

@Suite("Chunk compressor")
struct ChunkCompressorTests {
    let id = ContentID(hex: String(repeating: "01", count: 32))!

    private func encode(_ compressor: ChunkCompressor, _ bytes: [UInt8], index: UInt32 = 0) -> (ChunkCompressor.Outcome, [UInt8]) {
        var out = ByteBuffer()
        let outcome = bytes.withUnsafeBytes { compressor.encode($0, key: .init(contentID: id, index: index), into: &out) }
        return (outcome, Array(buffer: out))
    }

    /// Text travels compressed, and the receiver gets it back.
    @Test func textIsCompressed() throws {
        let text = Array(String(repeating: "GET /api/v1/files status=200 bytes=5120\n", count: 8000).utf8)
        let compressor = ChunkCompressor()
        let (outcome, bytes) = encode(compressor, text)
        guard case let .compressed(size) = outcome else { Issue.record("text was stored"); return }
        #expect(size == bytes.count)
        #expect(size < text.count / 4)
        #expect(try Inflater().inflate(bytes, declaredSize: text.count) == text)
        #expect(compressor.memo.count == 0)
    }

    /// Random bytes travel stored, and the verdict is remembered for next time.
    @Test func randomIsStoredAndRemembered() {
        var generator = SeededGenerator(seed: 5)
        let random = generator.bytes(256 * 1024)
        let compressor = ChunkCompressor()
        let (outcome, bytes) = encode(compressor, random, index: 3)
        #expect(outcome == .stored)
        #expect(bytes.count == random.count && bytes == random, "stored bytes differ")
        #expect(compressor.memo.isIncompressible(.init(contentID: id, index: 3)))
        #expect(!compressor.memo.isIncompressible(.init(contentID: id, index: 4)))
    }

    /// A chunk whose sample compresses but whose whole does not shrink enough is still stored.
    @Test func wholeChunkMustPay() {
        var generator = SeededGenerator(seed: 6)
        // Compressible middle (where the sample is taken), random elsewhere.
        var chunk = generator.bytes(1 << 20)
        let middle = (1 << 20) / 2
        for i in (middle - 17_000)..<(middle + 17_000) { chunk[i] = 0x41 }
        let (outcome, bytes) = encode(ChunkCompressor(), chunk)
        #expect(outcome == .stored)
        #expect(bytes.count == chunk.count && bytes == chunk, "stored bytes differ from the chunk")
    }

    /// Compression off stores everything; the memo is bounded.
    @Test func offAndBounded() {
        let text = [UInt8](repeating: 0x61, count: 10_000)
        #expect(encode(ChunkCompressor(policy: .off), text).0 == .stored)
        let memo = CompressionMemo(capacity: 4)
        for i in 0..<10 { memo.markIncompressible(.init(contentID: id, index: UInt32(i))) }
        #expect(memo.count <= 4)
    }
}
