/// What to request next: the rarest wanted chunk a holder has, kept ready for
/// every holder so that asking costs a read, not a walk over the file.
///
/// A chunk is **missing** until ``completed(_:)``; a missing chunk is
/// **wanted** unless it is ``requested(_:)`` (``returned(_:)`` makes it
/// wanted again). Its **rarity** is the number of active holders that have it:
/// the full holders (seeders, counted once for every chunk) plus the partial
/// holders whose map has it. A holder is offered the wanted chunk it has of
/// lowest rarity; ties go in file order starting at ``firstChunk`` and
/// wrapping around, exactly as ``DownloadPlan`` orders them.
///
/// ## What it keeps
///
/// Every wanted chunk `c` has a unique **key**
///
/// ```
/// key(c) = partialCount[c] × chunkCount + (c − firstChunk) mod chunkCount
/// ```
///
/// so the smallest key is the rarest chunk, first in tie order. (Full holders
/// add the same amount to every chunk's rarity, so they are left out of the
/// key and joining or leaving costs O(1).) Keys are kept in **key trees**:
/// a min-tree whose leaves are the 64 chunks of one bitmap word, each leaf
/// holding the smallest key among its word's chunks, each inner node the
/// smaller of its two children, the root the smallest of all.
///
/// ```
///                     [ 3·n+5 ]                    root: the pick
///             [ 3·n+5 ]        [ 4·n+70 ]
///   leaves:  [5·n+1][3·n+5]  [4·n+70][ ∞ ]         one per 64 chunks
///   words:   0..63  64..127  128..191 192..255     wanted ∧ holder's map
/// ```
///
/// There is one tree for the full holders (over all wanted chunks) and one per
/// partial holder (over the wanted chunks in its map). A tree over `n` chunks
/// has `2·⌈n/64⌉` (rounded to a power of two) 32-bit nodes: 32 KiB at 262 144
/// chunks, the size of a chunk map. At that size the picker holds 1.1 MiB
/// (1 MiB of it the 4-byte rarity counts) plus 64 KiB per partial holder
/// (its map and its tree): 1.6 MiB with 8 partial holders.
///
/// ## What each operation costs
///
/// With `n` chunks, `L = n/64` leaves and `P` partial holders:
/// - ``pick(for:skip:)``: O(1), the root of the holder's tree. Each chunk
///   `skip` refuses adds O(64 + log L), re-reading that chunk's word without it
///   and the path above it in a scratch overlay (the tree is not changed).
/// - ``requested(_:)``, ``returned(_:)``, ``completed(_:)``: one key comes
///   or goes in the full holders' tree and in the tree of each partial holder
///   that has the chunk. In a tree that is O(1) unless the key was its leaf's
///   minimum, then O(64 + log L) to re-read the word and fix the path; the
///   path stops at the first node that does not change. Worst case
///   O(P · (64 + log L)).
/// - ``holder(_:gained:)``: per chunk, one rarity count and the same key
///   updates, O(P · (64 + log L)) worst case; large batches take the
///   replacement path below.
/// - ``setHolder(_:available:)`` for a partial map, ``removeHolder(_:)`` of a
///   partial holder: O(L) to compare the maps word by word, then for each
///   changed word O(P · (64 + log L)); a joining holder's own tree is built in
///   O(n). A full holder joining or leaving: O(1).
/// - ``rarity(of:)``, ``unobtainableCount``, ``hasWanted``: O(1).
public struct ChunkPicker: Sendable {
    /// How the caller names a holder.
    public typealias HolderID = Int

    /// The number of chunks in the file.
    public let chunkCount: Int
    /// Where ties in rarity start (wrapping around the file); see ``DownloadPlan/Configuration/firstChunk``.
    public let firstChunk: Int

    /// Chunks verified and written: never picked.
    public private(set) var have: ChunkMap
    /// Missing chunks not in flight: the only ones ever picked.
    private var wanted: ChunkMap
    /// Partial holders that have each chunk.
    private var partialCount: [UInt32]
    /// Holders with every chunk.
    public private(set) var fullHolderCount = 0
    /// Every active holder: full, or the index of its entry in ``partials``.
    private var holders: [HolderID: Slot] = [:]
    /// Partial holders, densely packed (removal moves the last into the gap).
    private var partials: [Partial] = []
    /// The key tree of all wanted chunks, for full holders.
    private var seeds: KeyTree
    /// Missing chunks that no partial holder has.
    private var missingWithoutPartialHolder: Int
    /// The largest rarity a key distinguishes, so that keys fit in 32 bits
    /// (16 382 at 262 144 chunks; more common chunks tie in rarity).
    private let rarityCap: UInt32

    private enum Slot: Sendable {
        case full
        case partial(Int)
    }

    private struct Partial: Sendable {
        let id: HolderID
        var map: ChunkMap
        var tree: KeyTree
    }

    /// A picker for a file of `chunkCount` chunks with no holders yet: every
    /// chunk not in `have` is wanted.
    /// - Parameters:
    ///   - have: chunks already verified (resume): never picked.
    ///   - firstChunk: where ties in rarity start, wrapping; reduced modulo `chunkCount`.
    public init(chunkCount: Int, have: ChunkMap, firstChunk: Int) {
        precondition(chunkCount >= 0 && have.count == chunkCount, "a map of \(have.count) chunks for a file of \(chunkCount)")
        precondition(chunkCount < Int(UInt32.max / 2), "\(chunkCount) chunks is past what keys can hold")
        self.chunkCount = chunkCount
        let count = max(chunkCount, 1)
        self.firstChunk = (firstChunk % count + count) % count
        self.have = have
        var wanted = ChunkMap(count: chunkCount, full: true)
        have.forEachIndex { wanted.remove($0) }
        self.wanted = wanted
        self.partialCount = [UInt32](repeating: 0, count: chunkCount)
        self.missingWithoutPartialHolder = chunkCount - have.heldCount
        self.rarityCap = (UInt32.max - UInt32(count)) / UInt32(count)
        self.seeds = KeyTree(leaves: wanted.words.count)
        seeds = buildTree(over: nil)
    }

    // MARK: State

    /// How many active holders have `chunk`.
    public func rarity(of chunk: Int) -> Int {
        fullHolderCount + Int(partialCount[chunk])
    }

    /// Missing chunks no active holder has: while this is not zero the
    /// download cannot finish unless new holders come. O(1).
    public var unobtainableCount: Int {
        fullHolderCount > 0 ? 0 : missingWithoutPartialHolder
    }

    /// Whether any chunk is still wanted (missing and not requested). O(1).
    public var hasWanted: Bool { wanted.heldCount > 0 }

    /// How many chunks are wanted (missing and not requested).
    public var wantedCount: Int { wanted.heldCount }

    /// Whether `chunk` is wanted: missing and not requested.
    public func isWanted(_ chunk: Int) -> Bool { wanted.contains(chunk) }

    /// Whether `holder` is active and has `chunk`.
    public func holder(_ holder: HolderID, has chunk: Int) -> Bool {
        switch holders[holder] {
        case nil: false
        case .full: chunk >= 0 && chunk < chunkCount
        case let .partial(s): partials[s].map.contains(chunk)
        }
    }

    /// How many holders are active, full and partial.
    public var holderCount: Int { holders.count }

    // MARK: Holders

    /// A holder joins, or its whole chunk map is replaced. `available` nil (or a
    /// complete map) means it has every chunk. O(1) for a full holder; for a
    /// partial map, O(n/64) to compare it with the previous one, then work in
    /// proportion to the words that changed.
    public mutating func setHolder(_ id: HolderID, available: ChunkMap?) {
        let map = available.flatMap { $0.isComplete ? nil : $0 }
        if let map { precondition(map.count == chunkCount, "a map of \(map.count) chunks for a file of \(chunkCount)") }
        switch (holders[id], map) {
        case (.full, nil):
            return
        case (nil, nil):
            holders[id] = .full
            fullHolderCount += 1
        case (.full, let map?):
            fullHolderCount -= 1
            join(id, map)
        case (nil, let map?):
            join(id, map)
        case let (.partial(s), map):
            let old = partials[s].map
            if let map {
                partials[s].map = map
                refresh(old: old, new: map)
            } else {
                leave(slot: s)
                holders[id] = .full
                fullHolderCount += 1
            }
        }
    }

    /// A holder announced more chunks. A holder not yet known joins with just
    /// these; one with every chunk is unchanged. Per new chunk O(P · (64 + log L))
    /// at worst, usually O(P); a collection of more than 64 goes word by word as
    /// a map replacement.
    public mutating func holder(_ id: HolderID, gained chunks: some Sequence<Int>) {
        guard case let .partial(s)? = holders[id] else {
            if holders[id] == nil {
                var map = ChunkMap(count: chunkCount)
                for chunk in chunks { map.insert(chunk) }
                setHolder(id, available: map)
            }
            return
        }
        if chunks.underestimatedCount > 64 {
            var map = partials[s].map
            for chunk in chunks { map.insert(chunk) }
            setHolder(id, available: map)
            return
        }
        for chunk in chunks {
            precondition(chunk >= 0 && chunk < chunkCount, "chunk \(chunk) out of range 0..<\(chunkCount)")
            guard partials[s].map.insert(chunk) else { continue }
            let oldKey = key(chunk)
            countChanged(chunk, by: 1)
            guard wanted.contains(chunk) else { continue }
            rekey(chunk, from: oldKey, to: key(chunk), gainedBy: s)
        }
        if partials[s].map.isComplete { setHolder(id, available: nil) }
    }

    /// A holder leaves (dropped, gone): its chunks no longer count toward
    /// rarity. O(1) for a full holder; for a partial one, as a replacement of
    /// its map by an empty one.
    public mutating func removeHolder(_ id: HolderID) {
        switch holders[id] {
        case nil:
            return
        case .full:
            fullHolderCount -= 1
            holders[id] = nil
        case let .partial(s):
            leave(slot: s)
        }
    }

    // MARK: Requests

    /// A chunk was requested: it is no longer wanted (but stays missing).
    /// Nothing happens if it was not wanted (already requested, or had).
    public mutating func requested(_ chunk: Int) {
        guard wanted.contains(chunk) else { return }
        let oldKey = key(chunk)
        wanted.remove(chunk)
        rekey(chunk, from: oldKey, to: nil, gainedBy: nil)
    }

    /// A request for it ended without the chunk and no other copy is in
    /// flight: it is wanted again. Nothing happens if it is had or already wanted.
    public mutating func returned(_ chunk: Int) {
        guard !have.contains(chunk), wanted.insert(chunk) else { return }
        rekey(chunk, from: nil, to: key(chunk), gainedBy: nil)
    }

    /// The chunk is verified and written: never picked again.
    public mutating func completed(_ chunk: Int) {
        guard have.insert(chunk) else { return }
        if partialCount[chunk] == 0 { missingWithoutPartialHolder -= 1 }
        guard wanted.contains(chunk) else { return }
        let oldKey = key(chunk)
        wanted.remove(chunk)
        rekey(chunk, from: oldKey, to: nil, gainedBy: nil)
    }

    // MARK: Picking

    /// The rarest wanted chunk `holder` has, ties in file order from
    /// ``firstChunk`` (wrapping), passing over the chunks `skip` returns true
    /// for (those this holder refused as unavailable: a small set). nil if
    /// none, or if the holder is not active. O(1), plus O(64 + log L) per
    /// chunk skipped; `skip` is asked only about the candidates, best first.
    public func pick(for holder: HolderID, skip: (Int) -> Bool = { _ in false }) -> Int? {
        let tree: KeyTree
        switch holders[holder] {
        case nil: return nil
        case .full: tree = seeds
        case let .partial(s): tree = partials[s].tree
        }
        var best = tree.root
        guard best != KeyTree.empty else { return nil }
        var chunk = self.chunk(of: best)
        guard skip(chunk) else { return chunk }

        // Take the refused chunks out of a scratch copy of the paths they lie on.
        var overlay: [Int: UInt32] = [:]
        var skipped: [Int] = []
        let map: ChunkMap? = if case let .partial(s) = holders[holder] { partials[s].map } else { nil }
        while true {
            skipped.append(chunk)
            let w = chunk >> 6
            var bits = wanted.words[w] & (map?.words[w] ?? ~0)
            for refused in skipped where refused >> 6 == w { bits &= ~(1 << UInt64(refused & 63)) }
            var node = tree.leafCount + w
            overlay[node] = leafKey(word: w, bits: bits)
            while node > 1 {
                node >>= 1
                overlay[node] = min(overlay[2 * node] ?? tree.nodes[2 * node], overlay[2 * node + 1] ?? tree.nodes[2 * node + 1])
            }
            best = overlay[1]!
            guard best != KeyTree.empty else { return nil }
            chunk = self.chunk(of: best)
            guard skip(chunk) else { return chunk }
        }
    }

    // MARK: Keys

    /// The key of `chunk` at its current rarity: rarer first, then file order from ``firstChunk``.
    private func key(_ chunk: Int) -> UInt32 {
        let position = chunk >= firstChunk ? chunk - firstChunk : chunk - firstChunk + chunkCount
        return min(partialCount[chunk], rarityCap) * UInt32(chunkCount) + UInt32(position)
    }

    /// The chunk a key names.
    private func chunk(of key: UInt32) -> Int {
        let position = Int(key % UInt32(chunkCount))
        let chunk = position + firstChunk
        return chunk >= chunkCount ? chunk - chunkCount : chunk
    }

    /// The smallest key among the chunks of word `w` set in `bits`.
    private func leafKey(word w: Int, bits: UInt64) -> UInt32 {
        guard bits != 0 else { return KeyTree.empty }
        // Positions rise with the chunk, except past the wrap at the end of the file.
        let base = w << 6
        let shift = base >= firstChunk ? -firstChunk : chunkCount - firstChunk
        let n = UInt32(chunkCount)
        let cap = rarityCap
        return partialCount.withUnsafeBufferPointer { counts in
            var best = KeyTree.empty
            var bits = bits
            while bits != 0 {
                let chunk = base | bits.trailingZeroBitCount
                var position = chunk + shift
                if position >= chunkCount { position -= chunkCount }
                best = min(best, min(counts[chunk], cap) &* n &+ UInt32(truncatingIfNeeded: position))
                bits &= bits &- 1
            }
            return best
        }
    }

    /// A leaf's new value when one chunk's key goes from `old` to `new` (nil:
    /// absent) and the word's candidates are now `bits`: re-read only if the
    /// old key was the leaf's minimum (keys are unique).
    private func updatedLeaf(_ leaf: UInt32, old: UInt32?, new: UInt32?, word w: Int, bits: UInt64) -> UInt32 {
        old == leaf ? leafKey(word: w, bits: bits) : min(leaf, new ?? KeyTree.empty)
    }

    /// Moves `chunk` from key `old` to key `new` (nil: absent) in every tree
    /// it is in: the full holders' tree and each partial holder that has it.
    /// `gainedBy` is a partial holder that just gained it (absent before there).
    private mutating func rekey(_ chunk: Int, from old: UInt32?, to new: UInt32?, gainedBy gainer: Int?) {
        let w = chunk >> 6
        let wantedBits = wanted.words[w]
        let leaf = updatedLeaf(seeds.leaf(w), old: old, new: new, word: w, bits: wantedBits)
        seeds.setLeaf(w, leaf)
        for s in partials.indices where partials[s].map.contains(chunk) {
            let value = updatedLeaf(partials[s].tree.leaf(w), old: s == gainer ? nil : old, new: new,
                                    word: w, bits: wantedBits & partials[s].map.words[w])
            partials[s].tree.setLeaf(w, value)
        }
    }

    /// One more (or fewer) partial holder has `chunk`.
    private mutating func countChanged(_ chunk: Int, by delta: Int) {
        let before = partialCount[chunk]
        partialCount[chunk] = delta > 0 ? before + 1 : before - 1
        guard !have.contains(chunk) else { return }
        if before == 0 { missingWithoutPartialHolder -= 1 }
        if before == 1 && delta < 0 { missingWithoutPartialHolder += 1 }
    }

    /// A key tree over the wanted chunks in `map` (all of them if nil), built in O(n).
    private func buildTree(over map: ChunkMap?) -> KeyTree {
        var tree = KeyTree(leaves: wanted.words.count)
        for w in wanted.words.indices {
            tree.nodes[tree.leafCount + w] = leafKey(word: w, bits: wanted.words[w] & (map?.words[w] ?? ~0))
        }
        tree.rebuild()
        return tree
    }

    // MARK: Map changes

    /// A partial holder joins with `map`.
    private mutating func join(_ id: HolderID, _ map: ChunkMap) {
        refresh(old: ChunkMap(count: chunkCount), new: map)
        partials.append(Partial(id: id, map: map, tree: buildTree(over: map)))
        holders[id] = .partial(partials.count - 1)
    }

    /// The partial holder in `slot` leaves.
    private mutating func leave(slot s: Int) {
        let gone = partials[s]
        let last = partials.count - 1
        if s != last {
            partials.swapAt(s, last)
            holders[partials[s].id] = .partial(s)
        }
        partials.removeLast()
        holders[gone.id] = nil
        refresh(old: gone.map, new: ChunkMap(count: chunkCount))
    }

    /// One partial holder's map went from `old` to `new` (its entry, if it
    /// has one, already holds `new`): recount the chunks that changed, then
    /// re-read the changed words in every tree.
    private mutating func refresh(old: ChunkMap, new: ChunkMap) {
        var changedWords: [Int] = []
        for w in old.words.indices where old.words[w] != new.words[w] {
            changedWords.append(w)
            var gained = new.words[w] & ~old.words[w]
            while gained != 0 {
                countChanged(w << 6 | gained.trailingZeroBitCount, by: 1)
                gained &= gained &- 1
            }
            var lost = old.words[w] & ~new.words[w]
            while lost != 0 {
                countChanged(w << 6 | lost.trailingZeroBitCount, by: -1)
                lost &= lost &- 1
            }
        }
        for w in changedWords {
            seeds.setLeaf(w, leafKey(word: w, bits: wanted.words[w]))
            for s in partials.indices {
                let bits = wanted.words[w] & partials[s].map.words[w]
                guard bits != 0 || partials[s].tree.leaf(w) != KeyTree.empty else { continue }
                partials[s].tree.setLeaf(w, leafKey(word: w, bits: bits))
            }
        }
    }
}

/// A min-tree of 32-bit keys over `leaves` leaves, in an array: node 1 is the
/// root, node `i` has children `2i` and `2i + 1`, leaf `w` is node `leafCount + w`.
/// Empty leaves (and padding up to a power of two) hold ``empty``.
struct KeyTree: Sendable {
    /// No key: larger than every real one.
    static let empty = UInt32.max
    /// The number of leaf slots: a power of two.
    let leafCount: Int
    /// The nodes; index 0 is unused.
    var nodes: [UInt32]

    init(leaves: Int) {
        var count = 1
        while count < leaves { count <<= 1 }
        leafCount = count
        nodes = [UInt32](repeating: Self.empty, count: 2 * count)
    }

    /// The smallest key.
    var root: UInt32 { nodes[1] }

    /// Leaf `w`'s key.
    func leaf(_ w: Int) -> UInt32 { nodes[leafCount + w] }

    /// Sets leaf `w` and fixes its ancestors, stopping at the first that keeps its value.
    mutating func setLeaf(_ w: Int, _ value: UInt32) {
        var node = leafCount + w
        guard nodes[node] != value else { return }
        nodes.withUnsafeMutableBufferPointer { nodes in
            nodes[node] = value
            while node > 1 {
                node >>= 1
                let smaller = min(nodes[2 * node], nodes[2 * node + 1])
                if nodes[node] == smaller { return }
                nodes[node] = smaller
            }
        }
    }

    /// Recomputes every inner node from the leaves.
    mutating func rebuild() {
        for node in stride(from: leafCount - 1, through: 1, by: -1) {
            nodes[node] = min(nodes[2 * node], nodes[2 * node + 1])
        }
    }
}
