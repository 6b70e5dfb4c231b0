/// What to request next: the rarest wanted chunk a holder has, kept ready for
/// every holder so that asking costs a read, not a walk over the file.
///
/// A chunk is **missing** until ``completed(_:)``; a missing chunk is
/// **wanted** unless it is ``requested(_:)`` (``returned(_:)`` makes it
/// wanted again). Its **rarity** is the number of active holders that have it:
/// the full holders (seeders, counted once for every chunk) plus the partial
/// holders whose map has it. A holder is offered the wanted chunk it has of
/// lowest rarity; ties go in file order starting at ``firstChunk`` and
/// wrapping around, exactly as ``DownloadPlan`` orders them. A chunk a holder
/// refused (``holder(_:refused:)``) is not offered to it again until its map
/// is replaced, but still counts toward the chunk's rarity.
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
///                    [ 1·n+70 ]                     root: the pick, chunk 70
///            [ 1·n+70 ]         [ 3·n+130 ]
///   leaves: [2·n+1][1·n+70]   [3·n+130][  ∞  ]      one per 64 chunks
///   words:   0..63  64..127   128..191  192..255    wanted ∧ holder's map
/// ```
/// (`n` = `chunkCount`, `firstChunk` 0.) Per-rarity bitmaps scanned from a
/// low-water mark would be smaller, but a chunk coming back below the mark
/// (returned, or its rarity changed) sends the scan back over the file; the
/// trees bound every operation instead.
///
/// The full holders share one tree, over all wanted chunks. Each partial
/// holder has its own, over the wanted chunks in its map and not refused; so
/// has a full holder once it refuses a chunk. A tree over `n` chunks
/// has `2·⌈n/64⌉` (rounded to a power of two) 32-bit nodes: 32 KiB at 262 144
/// chunks, the size of a chunk map. At that size the picker holds 1.1 MiB
/// (1 MiB of it the 4-byte rarity counts) plus 64 KiB per partial holder
/// (its map and its tree) and 32 KiB more for a holder that refused chunks:
/// 1.6 MiB with 8 partial holders.
///
/// ## What each operation costs
///
/// With `n` chunks, `L = n/64` leaves and `P` holders with their own tree:
/// - ``pick(for:skip:)``: O(1), the root of the holder's tree. Each candidate
///   `skip` turns down adds O(64 + log L), re-reading that chunk's word
///   without it and the path above it in a scratch overlay (the tree is not
///   changed). So `skip` is for passing exclusions; a refusal for good belongs
///   in ``holder(_:refused:)``, or it would be skipped again on every pick.
/// - ``holder(_:refused:)``: one key leaves the holder's tree, O(64 + log L);
///   a full holder's first refusal builds its own tree, O(n).
/// - ``requested(_:)``, ``returned(_:)``, ``completed(_:)``: one key comes
///   or goes in the full holders' tree and in each own tree that has the
///   chunk. In a tree that is O(1) unless the key was its leaf's
///   minimum, then O(64 + log L) to re-read the word and fix the path; the
///   path stops at the first node that does not change. Worst case
///   O(P · (64 + log L)).
/// - ``holder(_:gained:)``: per chunk, one rarity count and the same key
///   updates, O(P · (64 + log L)) worst case; large batches take the
///   replacement path below.
/// - ``setHolder(_:available:)`` for a partial map, ``removeHolder(_:)`` of a
///   partial holder: O(L) to compare the maps word by word, then for each
///   changed word O(P · (64 + log L)); a joining holder's own tree (or that of
///   a holder whose refusals the new map clears) is built in O(n). A full
///   holder joining or leaving: O(1).
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
    /// Every active holder: a full one sharing ``seeds``, or the index of its own tree.
    private var holders: [HolderID: Slot] = [:]
    /// The holders with a tree of their own, densely packed (removal moves the last into the gap).
    private var own: [OwnTree] = []
    /// The key tree of all wanted chunks, for full holders without refusals.
    private var seeds: KeyTree
    /// Missing chunks that no partial holder has.
    private var missingWithoutPartialHolder: Int
    /// The largest rarity a key distinguishes, so that keys fit in 32 bits
    /// (16 382 at 262 144 chunks; more common chunks tie in rarity).
    private let rarityCap: UInt32

    private enum Slot: Sendable {
        /// Has every chunk, refused none: picks from ``seeds``.
        case full
        /// Picks from `own[index]`.
        case own(Int)
    }

    /// A holder with its own key tree: a partial holder, or a full one that refused chunks.
    private struct OwnTree: Sendable {
        let id: HolderID
        /// Counted in ``fullHolderCount`` rather than in the per-chunk counts.
        let isFull: Bool
        /// The chunks it has, as counted in rarity (every chunk if `isFull`).
        var map: ChunkMap
        /// Chunks it said it does not have: out of its tree, still in its map.
        var refused: ChunkMap?
        /// Its wanted, offered chunks.
        var tree: KeyTree

        /// Whether the tree may hold `chunk`: in the map and not refused.
        func offers(_ chunk: Int) -> Bool {
            map.contains(chunk) && refused?.contains(chunk) != true
        }

        /// The chunks of word `w` in the tree, given the wanted ones.
        func offered(_ wanted: UInt64, word w: Int) -> UInt64 {
            wanted & map.words[w] & ~(refused?.words[w] ?? 0)
        }
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
        seeds = buildTree(map: nil, refused: nil)
    }

    // MARK: State

    /// How many active holders have `chunk` (refusals do not change it).
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

    /// How many holders are active, full and partial.
    public var holderCount: Int { holders.count }

    /// Whether `holder` is active and has `chunk` by its map (refused or not).
    public func holder(_ holder: HolderID, has chunk: Int) -> Bool {
        switch holders[holder] {
        case nil: false
        case .full: chunk >= 0 && chunk < chunkCount
        case let .own(s): own[s].map.contains(chunk)
        }
    }

    // MARK: Holders

    /// A holder joins, or its whole chunk map is replaced (which clears its
    /// refusals). `available` nil (or a complete map) means it has every
    /// chunk. O(1) for a full holder; for a partial map, O(n/64) to compare it
    /// with the previous one, then work in proportion to the words that changed.
    public mutating func setHolder(_ id: HolderID, available: ChunkMap?) {
        if let available { precondition(available.count == chunkCount, "a map of \(available.count) chunks for a file of \(chunkCount)") }
        let map = available.flatMap { $0.isComplete ? nil : $0 }
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
        case let (.own(s), map) where own[s].isFull:
            // A full holder with refusals: forget them, then as from full.
            removeOwnTree(s)
            holders[id] = .full
            setHolder(id, available: map)
        case let (.own(s), map?):
            let old = own[s].map
            let hadRefusals = own[s].refused != nil
            own[s].map = map
            own[s].refused = nil
            refresh(old: old, new: map)
            if hadRefusals { own[s].tree = buildTree(map: map, refused: nil) }
        case let (.own(s), nil):
            leave(slot: s)
            holders[id] = .full
            fullHolderCount += 1
        }
    }

    /// A holder announced more chunks. A holder not yet known joins with just
    /// these; one with every chunk is unchanged; one that ends up with every
    /// chunk and no refusals becomes a full holder. Per new chunk
    /// O(P · (64 + log L)) at worst, usually O(P); a collection of more than
    /// 64 goes word by word as a map replacement.
    public mutating func holder(_ id: HolderID, gained chunks: some Sequence<Int>) {
        // One non-generic body, so callers in other modules get it specialized.
        let done: Void? = chunks.withContiguousStorageIfAvailable { holder(id, gainedChunks: $0) }
        if done == nil { Array(chunks).withUnsafeBufferPointer { holder(id, gainedChunks: $0) } }
    }

    /// ``holder(_:gained:)``'s body.
    private mutating func holder(_ id: HolderID, gainedChunks chunks: UnsafeBufferPointer<Int>) {
        switch holders[id] {
        case nil:
            var map = ChunkMap(count: chunkCount)
            for chunk in chunks { map.insert(chunk) }
            setHolder(id, available: map)
        case .full:
            return
        case let .own(s) where own[s].isFull:
            return
        case let .own(s):
            if chunks.count > 64 {
                let old = own[s].map
                for chunk in chunks { own[s].map.insert(chunk) }
                refresh(old: old, new: own[s].map)
            } else {
                for chunk in chunks {
                    precondition(chunk >= 0 && chunk < chunkCount, "chunk \(chunk) out of range 0..<\(chunkCount)")
                    guard own[s].map.insert(chunk) else { continue }   // known already
                    let oldKey = key(chunk)
                    countChanged(chunk, by: 1)
                    guard wanted.contains(chunk) else { continue }
                    rekey(chunk, from: oldKey, to: key(chunk), gainedBy: s)
                }
            }
            if own[s].map.isComplete && own[s].refused == nil { setHolder(id, available: nil) }
        }
    }

    /// The holder said it does not have `chunk` (a stale map): it is not
    /// offered that chunk again until its map is replaced, though the chunk
    /// still counts toward rarity, as in ``DownloadPlan``. Nothing happens if
    /// its map lacks the chunk. O(64 + log L); a full holder's first refusal
    /// gives it a tree of its own, O(n).
    public mutating func holder(_ id: HolderID, refused chunk: Int) {
        precondition(chunk >= 0 && chunk < chunkCount, "chunk \(chunk) out of range 0..<\(chunkCount)")
        switch holders[id] {
        case nil:
            return
        case .full:
            let map = ChunkMap(count: chunkCount, full: true)
            var refused = ChunkMap(count: chunkCount)
            refused.insert(chunk)
            own.append(OwnTree(id: id, isFull: true, map: map, refused: refused, tree: buildTree(map: map, refused: refused)))
            holders[id] = .own(own.count - 1)
        case let .own(s):
            guard own[s].offers(chunk) else { return }
            if own[s].refused == nil { own[s].refused = ChunkMap(count: chunkCount) }
            own[s].refused!.insert(chunk)
            guard wanted.contains(chunk) else { return }
            let w = chunk >> 6
            let leaf = updatedLeaf(own[s].tree.leaf(w), old: key(chunk), new: nil,
                                   word: w, bits: own[s].offered(wanted.words[w], word: w))
            own[s].tree.setLeaf(w, leaf)
        }
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
        case let .own(s) where own[s].isFull:
            removeOwnTree(s)
            fullHolderCount -= 1
            holders[id] = nil
        case let .own(s):
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

    /// The rarest wanted chunk `holder` has and has not refused, ties in file
    /// order from ``firstChunk`` (wrapping), passing over the chunks `skip`
    /// returns true for. nil if none, or if the holder is not active. O(1),
    /// plus O(64 + log L) per chunk skipped: `skip` is asked only about the
    /// candidates, best first, and suits a few passing exclusions (refusals
    /// for good go to ``holder(_:refused:)``).
    public func pick(for holder: HolderID, skip: (Int) -> Bool = { _ in false }) -> Int? {
        let entry: OwnTree?
        switch holders[holder] {
        case nil: return nil
        case .full: entry = nil
        case let .own(s): entry = own[s]
        }
        let tree = entry?.tree ?? seeds
        var best = tree.root
        guard best != KeyTree.empty else { return nil }
        var chunk = self.chunk(of: best)
        guard skip(chunk) else { return chunk }

        // Take the skipped chunks out of a scratch copy of the paths they lie on.
        var overlay: [Int: UInt32] = [:]
        var skipped: [Int: UInt64] = [:]   // by word
        while true {
            let w = chunk >> 6
            skipped[w, default: 0] |= 1 << UInt64(chunk & 63)
            let bits = (entry?.offered(wanted.words[w], word: w) ?? wanted.words[w]) & ~skipped[w]!
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
    /// it is in: the full holders' tree and each own tree that offers it.
    /// `gainedBy` is a partial holder that just gained it (absent before there).
    private mutating func rekey(_ chunk: Int, from old: UInt32?, to new: UInt32?, gainedBy gainer: Int?) {
        let w = chunk >> 6
        let wantedBits = wanted.words[w]
        seeds.setLeaf(w, updatedLeaf(seeds.leaf(w), old: old, new: new, word: w, bits: wantedBits))
        for s in own.indices where own[s].offers(chunk) {
            let value = updatedLeaf(own[s].tree.leaf(w), old: s == gainer ? nil : old, new: new,
                                    word: w, bits: own[s].offered(wantedBits, word: w))
            own[s].tree.setLeaf(w, value)
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

    /// A key tree over the wanted chunks in `map` (all of them if nil) and not `refused`, built in O(n).
    private func buildTree(map: ChunkMap?, refused: ChunkMap?) -> KeyTree {
        var tree = KeyTree(leaves: wanted.words.count)
        for w in wanted.words.indices {
            let bits = wanted.words[w] & (map?.words[w] ?? ~0) & ~(refused?.words[w] ?? 0)
            tree.nodes[tree.leafCount + w] = leafKey(word: w, bits: bits)
        }
        tree.rebuild()
        return tree
    }

    // MARK: Map changes

    /// A partial holder joins with `map`.
    private mutating func join(_ id: HolderID, _ map: ChunkMap) {
        refresh(old: ChunkMap(count: chunkCount), new: map)
        own.append(OwnTree(id: id, isFull: false, map: map, refused: nil, tree: buildTree(map: map, refused: nil)))
        holders[id] = .own(own.count - 1)
    }

    /// The partial holder in `slot` leaves.
    private mutating func leave(slot s: Int) {
        let gone = own[s]
        removeOwnTree(s)
        holders[gone.id] = nil
        refresh(old: gone.map, new: ChunkMap(count: chunkCount))
    }

    /// Drops `own[s]`, moving the last into its place; counts and `holders[its id]` are the caller's.
    private mutating func removeOwnTree(_ s: Int) {
        let last = own.count - 1
        if s != last {
            own.swapAt(s, last)
            holders[own[s].id] = .own(s)
        }
        own.removeLast()
    }

    /// One partial holder's map went from `old` to `new` (its own tree, if it
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
            for s in own.indices {
                let bits = own[s].offered(wanted.words[w], word: w)
                guard bits != 0 || own[s].tree.leaf(w) != KeyTree.empty else { continue }
                own[s].tree.setLeaf(w, leafKey(word: w, bits: bits))
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
