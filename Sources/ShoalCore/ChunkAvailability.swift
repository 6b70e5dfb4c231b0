/// How many holders have each part of a file, folded into at most a few
/// hundred cells for a picture of the swarm (the operator's page draws one
/// bar per file from it).
///
/// A cell stands for a run of consecutive chunks and shows the **fewest**
/// holders any chunk in the run has, so a single rare chunk is never averaged
/// away: a cell with 0 means some part of the file is held by nobody
/// connected. ``rarest`` is the minimum over the whole file and
/// ``rarestChunks`` how many chunks have exactly that few holders.
///
/// Made from chunk maps a word (64 chunks) at a time, through a window of at
/// most 64 Ki counters: the work is `chunkCount / 64` per partial holder
/// plus one step per chunk it holds, and the memory a fixed 256 KiB whatever
/// the file's size.
public struct ChunkAvailability: Sendable, Equatable, Codable {
    /// The chunks of the file.
    public let chunkCount: Int
    /// The chunks each cell stands for (the last cell may stand for fewer).
    public let chunksPerCell: Int
    /// Per cell, the fewest holders any of its chunks has.
    public let cells: [Int]
    /// Holders counted (complete and partial).
    public let holders: Int
    /// The fewest holders any chunk has (0 for an empty file).
    public let rarest: Int
    /// How many chunks have exactly ``rarest`` holders.
    public let rarestChunks: Int

    /// The default number of cells at most.
    public static let defaultMaximumCells = 200

    /// Counts `completeHolders` (which hold every chunk) plus, per chunk, the
    /// maps in `partialMaps` that hold it. Maps of another size than
    /// `chunkCount` are not counted.
    public init(chunkCount: Int, completeHolders: Int, partialMaps: [ChunkMap], maximumCells: Int = defaultMaximumCells) {
        precondition(chunkCount >= 0 && completeHolders >= 0 && maximumCells > 0)
        let maps = partialMaps.filter { $0.count == chunkCount }
        self.chunkCount = chunkCount
        self.holders = completeHolders + maps.count
        guard chunkCount > 0 else {
            chunksPerCell = 1
            cells = []
            rarest = 0
            rarestChunks = 0
            return
        }
        let perCell = (chunkCount + maximumCells - 1) / maximumCells
        let cellCount = (chunkCount + perCell - 1) / perCell
        var cells = [Int](repeating: Int.max, count: cellCount)
        var rarest = Int.max, rarestChunks = 0
        let window = 1 << 16  // chunks per pass: a multiple of 64
        var counts = [Int](repeating: 0, count: min(window, chunkCount))
        var start = 0
        while start < chunkCount {
            let end = min(chunkCount, start + window)
            for i in 0..<(end - start) { counts[i] = completeHolders }
            for map in maps {
                for w in (start >> 6)..<((end + 63) >> 6) {
                    var bits = map.words[w]
                    while bits != 0 {
                        counts[(w << 6 | bits.trailingZeroBitCount) - start] += 1
                        bits &= bits &- 1
                    }
                }
            }
            for chunk in start..<end {
                let count = counts[chunk - start]
                let cell = chunk / perCell
                if count < cells[cell] { cells[cell] = count }
                if count < rarest {
                    rarest = count
                    rarestChunks = 1
                } else if count == rarest {
                    rarestChunks += 1
                }
            }
            start = end
        }
        self.chunksPerCell = perCell
        self.cells = cells
        self.rarest = rarest
        self.rarestChunks = rarestChunks
    }
}
