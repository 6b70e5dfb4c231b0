import ShoalCore
import ShoalTestSupport
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

    /// The word-at-a-time walks (indices, bytes, decoding, firstIndex, changes) agree with bit-by-bit ones on random maps of every size around word edges.
    @Test(arguments: [0, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 1_000])
    func wordWalksMatchBitByBit(count: Int) throws {
        var random = SeededGenerator(seed: UInt64(count) + 1)
        for density in [0, 1, 5, 9, 10] {
            let a = Self.random(count, density, &random)
            let b = Self.random(count, density, &random)
            let held = (0..<count).filter(a.contains)
            #expect(ChunkMap(count: count, indices: held + held.reversed()) == a)
            #expect(a.indices == held)
            #expect(a.heldCount == held.count)
            var walked: [Int] = []
            a.forEachIndex { walked.append($0) }
            #expect(walked == held)

            var wire = [UInt8](repeating: 0, count: (count + 7) / 8)
            for i in held { wire[i / 8] |= 0x80 >> UInt8(i % 8) }
            #expect(a.bytes == wire)
            #expect(ChunkMap(count: count, bytes: wire) == a)
            #expect(ChunkMap(count: count, bytes: wire[...]) == a, "a slice decodes too")

            for start in [-1, 0, 1, 63, 64, 65, count - 1, count, count + 5] {
                #expect(a.firstIndex(from: start) == held.first { $0 >= start }, "from \(start)")
            }
            let changes = a.changes(to: b)
            #expect(changes.gained == (0..<count).filter { b.contains($0) && !a.contains($0) })
            #expect(changes.lost == (0..<count).filter { a.contains($0) && !b.contains($0) })
        }
        let full = ChunkMap(count: count, full: true)
        #expect(full.indices == Array(0..<count) && full.isComplete)
        #expect(full.bytes.reduce(0) { $0 + $1.nonzeroBitCount } == count, "no bits past the end")
        #expect(ChunkMap(count: count, bytes: full.bytes) == full)
    }

    /// A map decoded with a bit set past its count is refused in any word, the last included.
    @Test(arguments: [1, 9, 63, 65, 127])
    func decodingRefusesBitsPastTheEnd(count: Int) {
        var wire = ChunkMap(count: count, full: true).bytes
        wire[wire.count - 1] |= 1
        #expect(ChunkMap(count: count, bytes: wire) == nil)
    }

    static func random(_ count: Int, _ density: Int, _ random: inout SeededGenerator) -> ChunkMap {
        var map = ChunkMap(count: count)
        for i in 0..<count where Int.random(in: 0..<10, using: &random) < density { map.insert(i) }
        return map
    }

    /// One byte of the wire layout is the same byte as in the whole layout.
    @Test func singleByteMatchesTheLayout() {
        var map = ChunkMap(count: 21)
        for i in [0, 3, 8, 15, 20] { map.insert(i) }
        #expect((0..<3).map { map.byte(at: $0) } == map.bytes)
    }
}
