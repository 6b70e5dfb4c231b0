import ShoalCore
import Testing

@Suite("Chunk map")
struct ChunkMapTests {
    /// Insert, remove and count; the wire layout is most significant bit first.
    @Test func basics() throws {
        var map = ChunkMap(count: 10)
        let first = map.insert(0)
        let second = map.insert(0)
        #expect(first && !second)
        map.insert(9)
        #expect(map.heldCount == 2)
        #expect(map.bytes == [0x80, 0x40])
        #expect(map.indices == [0, 9])
        map.remove(0)
        #expect(!map.contains(0))
        #expect(!map.isComplete)
        let full = ChunkMap(count: 10, full: true)
        #expect(full.isComplete)
        #expect(full.bytes == [0xFF, 0xC0])
        #expect(ChunkMap(count: 10, bytes: full.bytes) == full)
    }

    /// Decoding refuses a wrong length and bits past the end.
    @Test func decodingRefusesBadInput() {
        #expect(ChunkMap(count: 10, bytes: [0xFF]) == nil)
        #expect(ChunkMap(count: 10, bytes: [0xFF, 0xE0]) == nil)
        #expect(ChunkMap(count: 0, bytes: []) != nil)
    }
}
