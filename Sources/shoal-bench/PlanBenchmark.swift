import ArgumentParser
import Foundation
import ShoalCore

/// The planning cost of a whole download, with no I/O: a simulated swarm
/// drives ``ChunkPicker`` alone, and the whole ``DownloadPlan`` (windows,
/// per-holder clocks, copies, over the picker) from the first request to the
/// last chunk.
struct PlanBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Planning cost per chunk (µs) of a simulated download, ChunkPicker beside DownloadPlan."
    )

    @Option(parsing: .upToNextOption, help: "Chunk counts to simulate (at most 262144, the 1 TiB limit).")
    var chunks: [Int] = [4_096, 16_384, 65_536, 262_144]

    @Option(help: "Holders in the swarm.")
    var holders = 8

    @Option(name: .customLong("plan-limit"), help: "Simulate DownloadPlan only up to this many chunks.")
    var planLimit = 262_144

    @Option(help: "Seed of the simulated swarm.")
    var seed: UInt64 = 1

    func validate() throws {
        guard holders >= 2 else { throw ValidationError("--holders must be at least 2 (one seeder, one partial holder).") }
        guard chunks.allSatisfy({ $0 >= 1 && $0 <= Int(ChunkSizing.maximumChunkCount) }) else {
            throw ValidationError("--chunks must be between 1 and \(ChunkSizing.maximumChunkCount).")
        }
    }

    func run() throws {
        say("""
            A simulated download, no I/O. Each holder keeps \(Swarm.window) requests in flight, picked
            round-robin; each round every holder answers its oldest. One answer in \(Swarm.refusalEvery)
            from a partial holder is "unavailable": the chunk goes back and that holder skips
            it from then on. Partial holders start with a random quarter of the chunks and
            announce \(Swarm.gainPerRound) more each round. Time: the whole download (swarm
            bookkeeping included), best of 3, per chunk.

            """)
        say(pad("planner", 14) + pad("chunks", 9) + pad("holders", 22) + pad("µs/chunk", 10) + pad("total s", 9) + "picks")
        for count in chunks {
            for partial in [0, holders / 2] {
                let swarm = Swarm(chunks: count, holders: holders, partial: partial, seed: seed)
                let (seconds, picks) = best { swarm.runPicker() }
                line("ChunkPicker", count, holders, partial, seconds, picks)
                if count <= planLimit {
                    let (seconds, picks) = best { swarm.runPlan() }
                    line("DownloadPlan", count, holders, partial, seconds, picks)
                }
            }
        }
        guard let largest = chunks.max() else { return }
        let swarm = Swarm(chunks: largest, holders: holders, partial: holders / 2, seed: seed)
        say("\nChunkPicker operations at \(largest) chunks, \(holders - holders / 2) seeders and \(holders / 2) partial holders (mean of 200):")
        for (operation, seconds) in swarm.operationCosts(repeats: 200) {
            say(pad(operation, 62) + String(format: "%9.3f µs", seconds * 1e6))
        }
    }

    func line(_ planner: String, _ count: Int, _ holders: Int, _ partial: Int, _ seconds: Double, _ picks: Int) {
        let mix = partial == 0 ? "\(holders) seeders" : "\(holders - partial) seeders, \(partial) partial"
        say(pad(planner, 14) + pad("\(count)", 9) + pad(mix, 22)
            + pad(String(format: "%.3f", seconds * 1e6 / Double(count)), 10) + pad(String(format: "%.3f", seconds), 9) + "\(picks)")
    }

    /// Runs `body` three times (once if it takes over 10 s); the fastest wall time in seconds, and its result.
    func best<T>(_ body: () -> T) -> (Double, T) {
        var fastest = Double.infinity
        var result: T?
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            let value = body()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if seconds < fastest { fastest = seconds; result = value }
            if seconds > 10 { break }
        }
        return (fastest, result!)
    }

    func say(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}

// MARK: - Simulation

/// A simulated swarm: holders `0..<partial` are partial holders, the rest seeders.
struct Swarm {
    /// Requests in flight per holder.
    static let window = 16
    /// One reply from a partial holder in this many is "unavailable".
    static let refusalEvery = 200
    /// Chunks each partial holder announces per round.
    static let gainPerRound = 4

    let chunks: Int
    let holders: Int
    let partial: Int
    let firstChunk: Int
    /// Each partial holder's chunks in the order it gets them; it starts with the first quarter.
    let arrivals: [[Int]]

    init(chunks: Int, holders: Int, partial: Int, seed: UInt64) {
        self.chunks = chunks
        self.holders = holders
        self.partial = partial
        var random = SplitMix64(seed: seed)
        firstChunk = Int.random(in: 0..<chunks, using: &random)
        arrivals = (0..<partial).map { _ in Array(0..<chunks).shuffled(using: &random) }
    }

    /// The whole download through ``ChunkPicker``; returns the number of picks.
    func runPicker() -> Int {
        var picker = ChunkPicker(chunkCount: chunks, have: ChunkMap(count: chunks), firstChunk: firstChunk)
        var known = Array(repeating: chunks / 4, count: partial)
        for id in 0..<holders {
            if id < partial {
                var map = ChunkMap(count: chunks)
                for chunk in arrivals[id][..<known[id]] { map.insert(chunk) }
                picker.setHolder(id, available: map)
            } else {
                picker.setHolder(id, available: nil)
            }
        }
        var queues = Array(repeating: [Int](), count: holders)
        var heads = Array(repeating: 0, count: holders)
        var partialReplies = 0
        var picks = 0
        var completed = 0
        while completed < chunks {
            for id in 0..<partial where known[id] < chunks {
                let next = min(chunks, known[id] + Self.gainPerRound)
                picker.holder(id, gained: arrivals[id][known[id]..<next])
                known[id] = next
            }
            for id in 0..<holders {
                while queues[id].count - heads[id] < Self.window,
                      let chunk = picker.pick(for: id) {
                    picker.requested(chunk)
                    queues[id].append(chunk)
                    picks += 1
                }
            }
            for id in 0..<holders where heads[id] < queues[id].count {
                let chunk = queues[id][heads[id]]
                heads[id] += 1
                if id < partial { partialReplies += 1 }
                if id < partial && partialReplies % Self.refusalEvery == 0 {
                    picker.holder(id, refused: chunk)
                    picker.returned(chunk)
                } else {
                    picker.completed(chunk)
                    completed += 1
                }
            }
        }
        return picks
    }

    /// The mean cost in seconds of holder changes, on a picker with this
    /// swarm's holders (partial ones at their starting quarter).
    func operationCosts(repeats: Int) -> [(String, Double)] {
        var picker = ChunkPicker(chunkCount: chunks, have: ChunkMap(count: chunks), firstChunk: firstChunk)
        for id in 0..<holders {
            picker.setHolder(id, available: id < partial ? ChunkMap(count: chunks, indices: arrivals[id][..<(chunks / 4)]) : nil)
        }
        let half = ChunkMap(count: chunks, indices: arrivals[0][..<(chunks / 2)])
        var more = half
        more.insert(arrivals[0][chunks / 2])
        let newcomer = holders
        func mean(_ body: (inout ChunkPicker) -> Void) -> Double {
            var copy = picker
            body(&copy)   // the first change copies the picker's storage
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<repeats { body(&copy) }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(repeats)
        }
        return [
            ("a seeder joins and leaves", mean { $0.setHolder(newcomer, available: nil); $0.removeHolder(newcomer) }),
            ("a partial holder (half the chunks) joins and leaves", mean { $0.setHolder(newcomer, available: half); $0.removeHolder(newcomer) }),
            ("its map is replaced by one with a chunk more, and back", mean {
                $0.setHolder(0, available: more)
                $0.setHolder(0, available: half)
            }),
            ("pick for a seeder", mean { _ = $0.pick(for: holders - 1) }),
            ("pick for a partial holder", mean { _ = $0.pick(for: 0) }),
        ]
    }

    /// The whole download through ``DownloadPlan``; returns the number of requests.
    func runPlan() -> Int {
        let manifest = try! Manifest(fileSize: UInt64(chunks) * 16_384, chunkSize: 16_384,
                                     digests: (0..<chunks).map { ChunkDigest(hashing: [UInt8(truncatingIfNeeded: $0)]) })
        var configuration = DownloadPlan.Configuration()
        configuration.firstChunk = firstChunk
        configuration.initialWindow = Self.window
        configuration.maximumWindow = Self.window
        var plan = DownloadPlan(manifest: manifest, configuration: configuration)
        var known = Array(repeating: chunks / 4, count: partial)
        let maps = (0..<partial).map { id in
            var map = ChunkMap(count: chunks)
            for chunk in arrivals[id][..<known[id]] { map.insert(chunk) }
            return map
        }
        for id in 0..<holders {
            plan.addPeer(id: id, name: "h\(id)", score: PeerScore(responseTime: 0.001), available: id < partial ? maps[id] : nil)
        }
        var queues = Array(repeating: [Int](), count: holders)
        var heads = Array(repeating: 0, count: holders)
        var partialReplies = 0
        var picks = 0
        var now = 0.0
        while !plan.isComplete {
            for id in 0..<partial where known[id] < chunks {
                let next = min(chunks, known[id] + Self.gainPerRound)
                plan.peer(id, gained: Array(arrivals[id][known[id]..<next]))
                known[id] = next
            }
            for request in plan.nextRequests(now: now) {
                queues[request.peer].append(request.chunk)
                picks += 1
            }
            now += 0.001
            for id in 0..<holders where heads[id] < queues[id].count {
                let chunk = queues[id][heads[id]]
                heads[id] += 1
                if id < partial { partialReplies += 1 }
                if id < partial && partialReplies % Self.refusalEvery == 0 {
                    plan.failed(peer: id, chunk: chunk, .unavailable)
                } else {
                    _ = plan.received(peer: id, chunk: chunk, now: now)
                }
            }
        }
        return picks
    }
}

/// SplitMix64: a seeded generator, so every planner sees the same swarm.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
