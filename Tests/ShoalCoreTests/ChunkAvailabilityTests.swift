import ShoalCore
import Testing

/// The availability bar: per cell the fewest holders of any of its chunks.
@Suite struct ChunkAvailabilityTests {
    /// Complete holders count everywhere; partial maps only where they hold.
    @Test func countsCompleteAndPartialHolders() {
        let a = ChunkAvailability(chunkCount: 10, completeHolders: 1,
                                  partialMaps: [ChunkMap(count: 10, indices: [0, 1, 2]), ChunkMap(count: 10, indices: [2, 9])])
        #expect(a.cells == [2, 2, 3, 1, 1, 1, 1, 1, 1, 2])
        #expect(a.chunksPerCell == 1 && a.holders == 3)
        #expect(a.rarest == 1 && a.rarestChunks == 6)
    }

    /// Many chunks fold into at most the cells asked for, each showing its
    /// rarest chunk: one missing chunk in a thousand still shows as 0.
    @Test func foldsIntoCellsKeepingTheRarest() {
        var map = ChunkMap(count: 100_000, full: true)
        map.remove(77_777)
        let a = ChunkAvailability(chunkCount: 100_000, completeHolders: 0, partialMaps: [map], maximumCells: 200)
        #expect(a.cells.count == 200 && a.chunksPerCell == 500)
        #expect(a.cells[77_777 / 500] == 0)
        #expect(a.cells.enumerated().allSatisfy { $0.offset == 155 || $0.element == 1 })
        #expect(a.rarest == 0 && a.rarestChunks == 1)
    }

    /// A last cell shorter than the others, counts past the window of one
    /// pass (64 Ki chunks), and maps of the wrong size left out.
    @Test func unevenCellsAndLongFiles() {
        let count = 200_003
        let evens = ChunkMap(count: count, indices: stride(from: 0, to: count, by: 2))
        let tail = ChunkMap(count: count, indices: (count - 3)..<count)
        let a = ChunkAvailability(chunkCount: count, completeHolders: 2, partialMaps: [evens, tail, ChunkMap(count: 5, full: true)], maximumCells: 7)
        #expect(a.chunksPerCell == 28_572 && a.cells.count == 7)
        #expect(a.holders == 4)
        #expect(a.cells == [2, 2, 2, 2, 2, 2, 2])
        #expect(a.rarest == 2 && a.rarestChunks == count / 2 - 1)
    }

    /// An empty file has no cells.
    @Test func emptyFile() {
        let a = ChunkAvailability(chunkCount: 0, completeHolders: 3, partialMaps: [])
        #expect(a.cells.isEmpty && a.rarest == 0 && a.holders == 3)
    }
}
