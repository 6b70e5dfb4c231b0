import ShoalCore
import ShoalTestSupport
import Testing

/// The chunk picker against hand-made swarms and a brute-force reference.
@Suite("Chunk picker")
struct ChunkPickerTests {
    func map(_ count: Int, _ indices: some Sequence<Int>) -> ChunkMap {
        ChunkMap(count: count, indices: indices)
    }

    func picker(_ count: Int, first: Int = 0, have: [Int] = []) -> ChunkPicker {
        ChunkPicker(chunkCount: count, have: map(count, have), firstChunk: first)
    }

    /// Picks for `holder` until it gets nil, requesting each: the order a lone holder is served in.
    func drain(_ picker: inout ChunkPicker, for holder: Int) -> [Int] {
        var order: [Int] = []
        while let chunk = picker.pick(for: holder) {
            picker.requested(chunk)
            order.append(chunk)
        }
        return order
    }

    /// A holder is offered first the chunks fewest holders have.
    @Test func rarestFirst() {
        var p = picker(8)
        p.setHolder(0, available: nil)
        p.setHolder(1, available: map(8, 0..<4))
        #expect(p.rarity(of: 0) == 2 && p.rarity(of: 7) == 1)
        #expect(p.pick(for: 0) == 4, "the full holder starts with the chunks only it has")
        #expect(p.pick(for: 1) == 0)
        p.setHolder(2, available: map(8, [2, 5]))
        #expect(p.pick(for: 0) == 4)
        #expect(p.pick(for: 1) == 0, "chunk 2 is now held thrice, 0 twice")
        #expect(p.pick(for: 2) == 5)
        #expect(drain(&p, for: 0) == [4, 6, 7, 0, 1, 3, 5, 2])
    }

    /// Ties in rarity go in file order from the first chunk, wrapping around the end.
    @Test func tiesStartAtTheFirstChunkAndWrap() {
        var p = picker(20, first: 18)
        p.setHolder(0, available: nil)
        #expect(drain(&p, for: 0) == [18, 19] + Array(0..<18))
        #expect(picker(20, first: -2).firstChunk == 18)
        #expect(picker(20, first: 38).firstChunk == 18)

        // Across a word boundary, and within one rarity among several.
        var q = picker(200, first: 130)
        q.setHolder(0, available: map(200, [10, 129, 131, 199]))
        q.setHolder(1, available: map(200, [10, 129, 131, 199, 5, 150]))
        #expect(drain(&q, for: 1) == [150, 5, 131, 199, 10, 129])
    }

    /// Requested chunks are not offered; returned ones are again; completed ones never are.
    @Test func requestedReturnedCompleted() {
        var p = picker(4)
        p.setHolder(0, available: nil)
        #expect(p.pick(for: 0) == 0)
        p.requested(0)
        #expect(p.pick(for: 0) == 1)
        p.returned(0)
        #expect(p.pick(for: 0) == 0)
        p.requested(0)
        p.completed(0)
        p.returned(0)
        #expect(p.pick(for: 0) == 1, "a completed chunk does not come back")
        p.completed(1)
        #expect(p.pick(for: 0) == 2, "completed without a request")
        p.requested(2)
        p.requested(3)
        #expect(!p.hasWanted && p.wantedCount == 0)
        #expect(p.pick(for: 0) == nil)
        p.requested(3)
        p.returned(3)
        #expect(p.hasWanted && p.pick(for: 0) == 3, "a second request of the same chunk changes nothing")
    }

    /// Chunks already had when the download resumes are never offered.
    @Test func resumeSkipsHeldChunks() {
        var p = picker(6, have: [0, 1, 2, 3])
        p.setHolder(0, available: nil)
        #expect(p.wantedCount == 2)
        #expect(drain(&p, for: 0) == [4, 5])
    }

    /// Rarity follows holders joining, gaining chunks, being replaced and leaving.
    @Test func holdersJoinGainAndLeave() {
        var p = picker(6)
        p.setHolder(0, available: map(6, [0, 1, 2]))
        p.setHolder(1, available: map(6, [0, 1]))
        #expect(p.pick(for: 0) == 2)
        p.holder(1, gained: [2, 2])
        #expect(p.rarity(of: 2) == 2)
        #expect(p.pick(for: 0) == 0, "now a three-way tie")
        p.holder(2, gained: [0, 1])
        #expect(p.holderCount == 3 && p.rarity(of: 0) == 3, "an unknown holder joins with what it announced")
        #expect(p.pick(for: 0) == 2)
        p.removeHolder(2)
        p.removeHolder(2)
        #expect(p.rarity(of: 0) == 2 && p.holderCount == 2)
        p.setHolder(1, available: map(6, [5]))
        #expect(p.rarity(of: 2) == 1 && p.rarity(of: 5) == 1)
        #expect(p.holder(1, has: 5) && !p.holder(1, has: 0))
        #expect(p.pick(for: 1) == 5)

        // Full and partial trade places; a complete map counts as full.
        p.setHolder(1, available: nil)
        #expect(p.rarity(of: 4) == 1 && p.fullHolderCount == 1)
        #expect(p.pick(for: 1) == 3)
        p.setHolder(1, available: map(6, [4]))
        #expect(p.fullHolderCount == 0 && p.rarity(of: 3) == 0)
        p.holder(1, gained: [0, 1, 2, 3, 5])
        #expect(p.fullHolderCount == 1, "a holder that gains every chunk becomes full")
        p.setHolder(0, available: ChunkMap(count: 6, full: true))
        #expect(p.fullHolderCount == 2 && p.rarity(of: 0) == 2)
        p.removeHolder(0)
        #expect(p.rarity(of: 0) == 1)
        #expect(p.pick(for: 0) == nil, "a holder that left is offered nothing")
    }

    /// Chunks `skip` refuses are passed over, best first, however many share a word.
    @Test func skipPassesOverRefusedChunks() {
        var p = picker(300, first: 60)
        p.setHolder(0, available: nil)
        p.setHolder(1, available: map(300, [61, 62, 200]))
        #expect(p.pick(for: 0, skip: { $0 == 60 }) == 63)
        #expect(p.pick(for: 0, skip: { (60..<70).contains($0) || $0 == 130 }) == 70)
        #expect(p.pick(for: 0, skip: { $0 != 59 }) == 59, "past every other wanted chunk, wrapping")
        #expect(p.pick(for: 0, skip: { _ in true }) == nil)
        #expect(p.pick(for: 1, skip: { $0 == 61 }) == 62)
        #expect(p.pick(for: 1, skip: { $0 < 100 }) == 200)
        var asked: [Int] = []
        #expect(p.pick(for: 1, skip: { asked.append($0); return $0 != 200 }) == 200)
        #expect(asked == [61, 62, 200], "skip sees only the candidates, best first")
        #expect(p.pick(for: 1) == 61, "skipping changes nothing")
    }

    /// A refused chunk is not offered to that holder again, still counts toward rarity, and is offered again after a new map.
    @Test func refusalsLastUntilANewMap() {
        var p = picker(130)
        p.setHolder(0, available: nil)
        p.setHolder(1, available: map(130, [3, 70, 71]))
        p.holder(1, refused: 3)
        p.holder(1, refused: 5)
        #expect(p.pick(for: 1) == 70 && p.rarity(of: 3) == 2)
        p.holder(0, refused: 0)
        p.holder(0, refused: 1)
        #expect(p.fullHolderCount == 1 && p.rarity(of: 0) == 1)
        #expect(p.pick(for: 0) == 2, "a seeder's refusals hold too")
        p.requested(2)
        p.returned(2)
        p.holder(1, gained: [0, 1, 2])
        #expect(p.pick(for: 0) == 4)
        #expect(p.pick(for: 1) == 0)

        p.setHolder(0, available: nil)
        #expect(p.pick(for: 0) == 4 && p.fullHolderCount == 1)
        p.holder(0, refused: 4)
        #expect(p.pick(for: 0) == 5)
        p.setHolder(0, available: map(130, [4, 6]))
        #expect(p.fullHolderCount == 0 && p.pick(for: 0) == 4, "a new map forgets refusals")
        p.setHolder(1, available: map(130, [3, 70]))
        #expect(p.pick(for: 1) == 3)
        p.holder(1, refused: 3)
        p.holder(1, gained: (0..<130).filter { $0 != 3 && $0 != 70 })
        #expect(p.fullHolderCount == 0 && p.pick(for: 1) == 0, "with refusals, a complete map stays a holder's own")
        p.removeHolder(1)
        p.removeHolder(0)
        #expect(p.holderCount == 0 && p.unobtainableCount == 130)
    }

    /// Missing chunks no active holder has are counted; a full holder covers them all.
    @Test func unobtainableCounts() {
        var p = picker(10, have: [9])
        #expect(p.unobtainableCount == 9)
        p.setHolder(0, available: map(10, [0, 1, 9]))
        #expect(p.unobtainableCount == 7)
        p.setHolder(1, available: map(10, [1, 2]))
        #expect(p.unobtainableCount == 6)
        p.completed(5)
        #expect(p.unobtainableCount == 5, "completed from a holder since gone")
        p.setHolder(2, available: nil)
        #expect(p.unobtainableCount == 0)
        p.removeHolder(2)
        p.removeHolder(0)
        #expect(p.unobtainableCount == 6)
        p.requested(1)
        #expect(p.unobtainableCount == 6, "a chunk in flight is still missing")
        #expect(picker(0).unobtainableCount == 0 && !picker(0).hasWanted)
    }

    /// A whole download with holders gaining chunks: every chunk picked exactly once, by a holder that has it.
    @Test func wholeDownloadPicksEachChunkOnce() {
        let count = 3_000
        var random = SeededGenerator(seed: 7)
        var p = picker(count, first: 2_999)
        let orders = (0..<3).map { _ in Array(0..<count).shuffled(using: &random) }
        var known = [500, 500, 500]
        for id in 0..<3 { p.setHolder(id, available: map(count, orders[id][..<known[id]])) }
        p.setHolder(3, available: nil)
        var picked: [Int] = []
        while p.hasWanted {
            for id in 0..<3 {
                let next = min(count, known[id] + 7)
                p.holder(id, gained: orders[id][known[id]..<next])
                known[id] = next
            }
            for id in 0..<4 {
                guard let chunk = p.pick(for: id) else { continue }
                #expect(p.holder(id, has: chunk))
                p.requested(chunk)
                p.completed(chunk)
                picked.append(chunk)
            }
        }
        #expect(picked.count == count && Set(picked).count == count)
    }

    /// Over many random operations, `pick`, `rarity`, `unobtainableCount` and `hasWanted` agree with a brute-force model.
    @Test(arguments: [1, 5, 64, 65, 130, 300])
    func matchesBruteForce(chunks count: Int) async {
        for seed in UInt64(1)...5 {
            var random = SeededGenerator(seed: seed &* 1_000 &+ UInt64(count))
            let first = Int.random(in: 0..<count, using: &random)
            let have = map(count, (0..<count).filter { _ in Int.random(in: 0..<5, using: &random) == 0 })
            var picker = ChunkPicker(chunkCount: count, have: have, firstChunk: first)
            var model = Model(count: count, first: first, have: Set(have.indices))
            for step in 0..<1_200 {
                // Seconds of work in a debug build: let the other tests' tasks run meanwhile.
                if step % 100 == 0 { await Task.yield() }
                let op = Int.random(in: 0..<100, using: &random)
                let holder = Int.random(in: 0..<6, using: &random)
                let chunk = Int.random(in: 0..<count, using: &random)
                switch op {
                case 0..<8:
                    var available: ChunkMap? = nil
                    if Int.random(in: 0..<4, using: &random) != 0 {
                        let density = Int.random(in: 1...10, using: &random)
                        available = map(count, (0..<count).filter { _ in Int.random(in: 0..<10, using: &random) < density })
                    }
                    picker.setHolder(holder, available: available)
                    model.setHolder(holder, available.map { Set($0.indices) })
                case 8..<12:
                    picker.removeHolder(holder)
                    model.removeHolder(holder)
                case 12..<30:
                    let gained = (0..<Int.random(in: 0..<(op < 14 ? 100 : 4), using: &random)).map { _ in Int.random(in: 0..<count, using: &random) }
                    picker.holder(holder, gained: gained)
                    model.gain(holder, gained)
                case 30..<55:
                    picker.requested(chunk)
                    if !model.have.contains(chunk) { model.requested.insert(chunk) }
                case 55..<65:
                    picker.returned(chunk)
                    model.requested.remove(chunk)
                case 65..<72:
                    picker.completed(chunk)
                    model.have.insert(chunk)
                    model.requested.remove(chunk)
                case 72..<77:
                    picker.holder(holder, refused: chunk)
                    model.refuse(holder, chunk)
                default:
                    let refused = Set((0..<Int.random(in: 0..<4, using: &random)).map { _ in Int.random(in: 0..<count, using: &random) })
                    let picked = picker.pick(for: holder, skip: refused.contains)
                    #expect(picked == model.pick(for: holder, skip: refused), "seed \(seed), step \(step)")
                }
                #expect(picker.rarity(of: chunk) == model.rarity(of: chunk), "seed \(seed), step \(step)")
                #expect(picker.unobtainableCount == model.unobtainableCount, "seed \(seed), step \(step)")
                #expect(picker.hasWanted == model.hasWanted, "seed \(seed), step \(step)")
            }
        }
    }

    /// The brute-force model: sets, and a walk over every chunk for each answer.
    struct Model {
        let count: Int
        let first: Int
        var have: Set<Int>
        var requested: Set<Int> = []
        /// nil: a full holder.
        var holders: [Int: Set<Int>?] = [:]
        var refused: [Int: Set<Int>] = [:]

        init(count: Int, first: Int, have: Set<Int>) {
            self.count = count
            self.first = first
            self.have = have
        }

        mutating func setHolder(_ id: Int, _ chunks: Set<Int>?) {
            holders[id] = .some(chunks?.count == count ? nil : chunks)
            refused[id] = nil
        }

        mutating func removeHolder(_ id: Int) {
            holders[id] = nil
            refused[id] = nil
        }

        mutating func gain(_ id: Int, _ chunks: [Int]) {
            switch holders[id] {
            case nil: setHolder(id, Set(chunks))
            case let .some(held?): holders[id] = .some(held.union(chunks))
            case .some(nil): break
            }
        }

        mutating func refuse(_ id: Int, _ chunk: Int) {
            if has(id, chunk) { refused[id, default: []].insert(chunk) }
        }

        func has(_ id: Int, _ chunk: Int) -> Bool {
            guard let held = holders[id] else { return false }
            return held?.contains(chunk) ?? true
        }

        func rarity(of chunk: Int) -> Int { holders.keys.filter { has($0, chunk) }.count }

        func pick(for id: Int, skip: Set<Int>) -> Int? {
            var best: Int?
            for offset in 0..<count {
                let chunk = (first + offset) % count
                guard !have.contains(chunk), !requested.contains(chunk), !skip.contains(chunk), has(id, chunk),
                      refused[id]?.contains(chunk) != true else { continue }
                if best == nil || rarity(of: chunk) < rarity(of: best!) { best = chunk }
            }
            return best
        }

        var unobtainableCount: Int { (0..<count).filter { !have.contains($0) && rarity(of: $0) == 0 }.count }
        var hasWanted: Bool { (0..<count).contains { !have.contains($0) && !requested.contains($0) } }
    }
}
