import ShoalCore
import Testing

@Suite("Chunk sizing")
struct ChunkSizingTests {
    /// The default rule: about 1024 chunks, a power of two, 256 KiB ... 4 MiB.
    static let table: [(UInt64, UInt32)] = [
        (0, 256 << 10),
        (1, 256 << 10),
        (256 << 20, 256 << 10),
        ((256 << 20) + 1, 512 << 10),
        (1 << 30, 1 << 20),
        (4 << 30, 4 << 20),
        (100 << 30, 4 << 20),
    ]

    @Test(arguments: table)
    func defaultRule(size: UInt64, chunk: UInt32) {
        #expect(ChunkSizing.defaultChunkSize(forFileSize: size) == chunk)
    }

    /// Chunk counts round up.
    @Test func chunkCount() {
        #expect(ChunkSizing.chunkCount(fileSize: 0, chunkSize: 16) == 0)
        #expect(ChunkSizing.chunkCount(fileSize: 16, chunkSize: 16) == 1)
        #expect(ChunkSizing.chunkCount(fileSize: 17, chunkSize: 16) == 2)
        #expect(ChunkSizing.chunkCount(fileSize: (4 << 30) + 1, chunkSize: 4 << 20) == 1025)
    }
}
