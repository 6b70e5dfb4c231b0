import ShoalCore
import ShoalTestSupport
import Testing

/// The download plan against a simulated swarm: no sockets, time passed in.
@Suite("Download plan")
struct DownloadPlanTests {
    /// A manifest of `count` chunks of 16 KiB (contents irrelevant to the plan).
    func manifest(chunks count: Int) -> Manifest {
        try! Manifest(fileSize: UInt64(count) * 16_384, chunkSize: 16_384,
                      digests: (0..<count).map { ChunkDigest(hashing: [UInt8(truncatingIfNeeded: $0)]) })
    }

    func map(_ count: Int, _ indices: [Int]) -> ChunkMap {
        var map = ChunkMap(count: count)
        for i in indices { map.insert(i) }
        return map
    }

    /// Simulates holders answering in order of their speed until done; returns chunks served per holder.
    func run(_ plan: inout DownloadPlan, secondsPerChunk: [Int: Double], failing: Set<Int> = [], limit: Int = 100_000) -> [Int: Int] {
        simulate(&plan, secondsPerChunk: secondsPerChunk, failing: failing, limit: limit).served
    }

    /// As ``run``, also returning how many requests were made and when the last chunk came (simulated seconds).
    func simulate(_ plan: inout DownloadPlan, secondsPerChunk: [Int: Double], failing: Set<Int> = [],
                  limit: Int = 100_000) -> (served: [Int: Int], requests: Int, end: Double) {
        var requests = 0
        var now = 0.0
        var pending: [(time: Double, request: DownloadPlan.Request)] = []
        var served: [Int: Int] = [:]
        var steps = 0
        while !plan.isComplete && steps < limit {
            steps += 1
            for request in plan.nextRequests(now: now) {
                requests += 1
                let start = max(now, pending.filter { $0.request.peer == request.peer }.map(\.time).max() ?? now)
                pending.append((start + secondsPerChunk[request.peer]!, request))
            }
            guard let next = pending.indices.min(by: { pending[$0].time < pending[$1].time }) else { break }
            let (time, request) = pending.remove(at: next)
            now = time
            if failing.contains(request.peer) {
                plan.failed(peer: request.peer, chunk: request.chunk, .badData("bad hash"))
                pending.removeAll { $0.request.peer == request.peer }
            } else if plan.received(peer: request.peer, chunk: request.chunk, now: now).isAccepted {
                served[request.peer, default: 0] += 1
            }
        }
        return (served, requests, now)
    }

    /// Three seeders: the file completes, each serves some, the fastest the most.
    @Test func threeSeedersShare() {
        var plan = DownloadPlan(manifest: manifest(chunks: 60))
        for id in 0..<3 { plan.addPeer(id: id, name: "s\(id)", score: PeerScore(responseTime: 0.001), available: nil) }
        let served = run(&plan, secondsPerChunk: [0: 0.001, 1: 0.002, 2: 0.004])
        #expect(plan.isComplete)
        #expect(served.values.reduce(0, +) == 60)
        #expect(served.keys.count == 3 && served.values.allSatisfy { $0 > 0 })
        #expect(served[0]! > served[2]!)
    }

    /// A holder that sends a bad chunk is dropped; the others finish the file.
    @Test func failingHolderIsDropped() {
        var plan = DownloadPlan(manifest: manifest(chunks: 30))
        for id in 0..<3 { plan.addPeer(id: id, name: "s\(id)", score: PeerScore(responseTime: 0.001), available: nil) }
        _ = run(&plan, secondsPerChunk: [0: 0.001, 1: 0.001, 2: 0.001], failing: [1])
        #expect(plan.isComplete)
        #expect(plan.peers[1]?.dropped == "bad hash")
        #expect(plan.peers[1]?.chunksServed == 0)
        #expect(plan.peers[1]!.score.liveFailures == 1)
    }

    /// Rarest first: a holder asks first for the chunks only it has.
    @Test func rarestFirst() {
        var plan = DownloadPlan(manifest: manifest(chunks: 8))
        plan.addPeer(id: 0, name: "full", score: PeerScore(responseTime: 0.001), available: nil)
        plan.addPeer(id: 1, name: "half", score: PeerScore(responseTime: 0.002), available: map(8, [0, 1, 2, 3]))
        let first = plan.nextRequests(now: 0)
        let toFull = first.filter { $0.peer == 0 }.map(\.chunk)
        #expect(toFull.allSatisfy { $0 >= 4 }, "the full holder starts with chunks only it has: \(toFull)")
        #expect(first.filter { $0.peer == 1 }.allSatisfy { $0.chunk < 4 })
    }

    /// Ties in rarity go in file order from the plan's first chunk, wrapping
    /// around; each plan draws its own, so downloaders that start together
    /// fetch different chunks first.
    @Test func tiesStartAtTheFirstChunkAndWrap() {
        var configuration = DownloadPlan.Configuration()
        configuration.firstChunk = 18
        configuration.initialWindow = 4
        var plan = DownloadPlan(manifest: manifest(chunks: 20), configuration: configuration)
        plan.addPeer(id: 0, name: "seeder", score: PeerScore(responseTime: 0.001), available: nil)
        #expect(plan.nextRequests(now: 0).map(\.chunk) == [18, 19, 0, 1])

        let starts = Set((0..<20).map { _ in DownloadPlan(manifest: manifest(chunks: 1000)).firstChunk })
        #expect(starts.count > 10, "random first chunks: \(starts.sorted())")
    }

    /// Windows grow with measured throughput, within the bounds.
    @Test func windowGrowsWithThroughput() {
        var plan = DownloadPlan(manifest: manifest(chunks: 200))
        plan.addPeer(id: 0, name: "fast", score: PeerScore(responseTime: 0.001), available: nil)
        let first = plan.nextRequests(now: 0)
        #expect(first.count == 2)
        // 16 KiB every 0.1 ms = 160 MB/s: a 0.25 s queue is far over the maximum.
        #expect(plan.received(peer: 0, chunk: first[0].chunk, now: 0.0001) == .accepted(cancel: []))
        #expect(plan.peers[0]!.window == 16)
        var slow = DownloadPlan(manifest: manifest(chunks: 200))
        slow.addPeer(id: 0, name: "slow", score: PeerScore(responseTime: 0.001), available: nil)
        let asked = slow.nextRequests(now: 0)
        #expect(slow.received(peer: 0, chunk: asked[0].chunk, now: 1) == .accepted(cancel: []))   // 16 KiB/s
        #expect(slow.peers[0]!.window == 2)
    }

    /// A chunk late at a stalled holder is asked of an idle one; the first
    /// copy wins and the plan says to cancel the other request.
    @Test func lateChunksAreCopied() {
        var plan = DownloadPlan(manifest: manifest(chunks: 4))
        plan.addPeer(id: 0, name: "stalls", score: PeerScore(responseTime: 0.001), available: nil)
        plan.addPeer(id: 1, name: "fast", score: PeerScore(responseTime: 0.002), available: nil)
        let first = plan.nextRequests(now: 0)
        #expect(first.count == 4)
        let stuck = first.filter { $0.peer == 0 }.map(\.chunk)
        // The other holder answers at 1 MB/s, the speed assumed of the first.
        var t = 0.0
        for request in first where request.peer == 1 {
            t += 0.016
            #expect(plan.received(peer: 1, chunk: request.chunk, now: t).isAccepted)
        }
        // The first's are expected at about 17 and 33 ms: not late yet, and no copies.
        #expect(plan.nextRequests(now: 0.04).isEmpty)
        #expect(plan.nextCheck(after: 0.04) != nil)
        // Well past them: late, so the idle holder copies both.
        let copies = plan.nextRequests(now: 0.2)
        #expect(Set(copies.map(\.chunk)) == Set(stuck))
        #expect(copies.allSatisfy { $0.peer == 1 })
        #expect(plan.peers[0]!.isLate)
        for request in copies {
            #expect(plan.received(peer: 1, chunk: request.chunk, now: 0.21) == .accepted(cancel: [DownloadPlan.Request(peer: 0, chunk: request.chunk)]))
        }
        #expect(plan.isComplete)
        #expect(plan.peers[0]!.inFlight.isEmpty, "the losing requests are released")
        #expect(plan.received(peer: 0, chunk: stuck[0], now: 5) == .duplicate)
    }

    /// Equally fast holders near the end do not copy each other's chunks.
    @Test func noCopiesAmongEquals() {
        var configuration = DownloadPlan.Configuration()
        configuration.initialWindow = 3
        var plan = DownloadPlan(manifest: manifest(chunks: 6), configuration: configuration)
        plan.addPeer(id: 0, name: "a", score: PeerScore(responseTime: 0.001), available: nil)
        plan.addPeer(id: 1, name: "b", score: PeerScore(responseTime: 0.001), available: nil)
        let first = plan.nextRequests(now: 0)
        #expect(first.count == 6)
        // a answers all three at 1 MB/s; b has answered none but is not late yet.
        var t = 0.0
        for request in first where request.peer == 0 {
            t += 0.016
            _ = plan.received(peer: 0, chunk: request.chunk, now: t)
        }
        #expect(plan.nextRequests(now: t).isEmpty, "b's chunks are not late: no copies")
    }

    /// An idle fast holder copies the tail of a slow holder's queue, which
    /// the slow one has not begun to send, and leaves it the chunks it is
    /// sending or about to: those copies would cross both links.
    @Test func copiesTakeTheTailOfASlowQueue() {
        var configuration = DownloadPlan.Configuration()
        configuration.initialWindow = 8
        configuration.maximumWindow = 8
        var plan = DownloadPlan(manifest: manifest(chunks: 16), configuration: configuration)
        plan.addPeer(id: 0, name: "slow", score: PeerScore(responseTime: 0.001), available: nil)
        plan.addPeer(id: 1, name: "fast", score: PeerScore(responseTime: 0.001), available: nil)
        let first = plan.nextRequests(now: 0)
        #expect(first.count == 16)
        // fast: 16 KiB a millisecond; slow: its first after 17 ms (about 1 MB/s).
        var t = 0.0
        for request in first where request.peer == 1 {
            t += 0.001
            #expect(plan.received(peer: 1, chunk: request.chunk, now: t).isAccepted)
        }
        let slowQueue = first.filter { $0.peer == 0 }.map(\.chunk).sorted()
        #expect(plan.received(peer: 0, chunk: slowQueue[0], now: 0.017).isAccepted)
        let copies = plan.nextRequests(now: 0.02)
        let copied = copies.map(\.chunk).sorted()
        #expect(copies.allSatisfy { $0.peer == 1 })
        #expect(!copied.isEmpty && copied.count < 7, "some of the slow holder's 7, not all: \(copied)")
        #expect(copied == Array(slowQueue.suffix(copied.count)), "the latest expected first: \(copied) of \(slowQueue)")
        #expect(!copied.contains(slowQueue[1]), "the chunk the slow holder sends next stays with it")
    }

    /// An idle holder does not copy the tail of a faster one's queue, though
    /// its copy would come before the faster one starts on it: if the faster
    /// one wins after all, the copy crossed its link for nothing. The same
    /// queue is copied by a holder faster than its own.
    @Test func onlyFasterHoldersCopyAQueuesTail() {
        func plan(joining rate: Double) -> DownloadPlan {
            var configuration = DownloadPlan.Configuration()
            configuration.initialWindow = 16
            var plan = DownloadPlan(manifest: manifest(chunks: 16), configuration: configuration)
            plan.addPeer(id: 0, name: "first", score: PeerScore(responseTime: 0.0001), available: nil)
            #expect(plan.nextRequests(now: 0).count == 16)
            // It brings 16 KiB a millisecond: its other 15 are due until about 16 ms.
            let head = plan.peers[0]!.inFlight.keys.min()!
            #expect(plan.received(peer: 0, chunk: head, now: 0.001).isAccepted)
            // Another joins, measured (before this download) at `rate` bytes a second.
            var score = PeerScore(responseTime: 0.0001)
            score.observeChunk(bytes: 16_384, seconds: 16_384 / rate)
            plan.addPeer(id: 1, name: "second", score: score, available: nil)
            return plan
        }
        var slower = plan(joining: 15_500_000)
        #expect(slower.nextRequests(now: 0.001).isEmpty, "a slower holder copied a faster one's chunks")
        var faster = plan(joining: 40_000_000)
        let copies = faster.nextRequests(now: 0.001)
        #expect(!copies.isEmpty && copies.allSatisfy { $0.peer == 1 }, "a faster holder left a slower one's tail alone")
    }

    /// Near the end a slow holder is not given chunks a fast one would bring
    /// sooner: no copies, and the file is in about when both links together
    /// could bring it, not when the slow one brings its last.
    @Test func theLastChunksGoToWhoBringsThemFirst() {
        var plan = DownloadPlan(manifest: manifest(chunks: 200))
        plan.addPeer(id: 0, name: "fast", score: PeerScore(responseTime: 0.001), available: nil)
        plan.addPeer(id: 1, name: "slow", score: PeerScore(responseTime: 0.001), available: nil)
        // 16 KiB in 1 ms and in 25 ms: together about 1 040 chunks a second.
        let result = simulate(&plan, secondsPerChunk: [0: 0.001, 1: 0.025])
        #expect(plan.isComplete)
        #expect(result.requests == 200, "no chunk asked twice")
        #expect(result.served[1, default: 0] > 0)
        #expect(result.end < 200 / 1040.0 + 0.01, "ended at \(result.end) s")
    }

    /// A late holder gets no new work until something comes from it, then one probe at a time.
    @Test func lateHoldersWaitForAProbe() {
        var plan = DownloadPlan(manifest: manifest(chunks: 100))
        plan.addPeer(id: 0, name: "slow", score: PeerScore(responseTime: 0.001), available: nil)
        let first = plan.nextRequests(now: 0)
        #expect(first.count == 2)
        #expect(plan.nextRequests(now: 1).isEmpty)
        #expect(plan.peers[0]!.isLate)
        // Its first answer comes at last: it is back, with room for more.
        #expect(plan.received(peer: 0, chunk: first[0].chunk, now: 1.5).isAccepted)
        #expect(!plan.peers[0]!.isLate)
        #expect(plan.nextRequests(now: 1.5).count >= 1)
    }

    /// Deadlines follow each holder's measured speed, never below the minimum.
    @Test func deadlinesFollowTheHolder() {
        var configuration = DownloadPlan.Configuration()
        configuration.minimumDeadline = 0.5
        configuration.initialWindow = 4
        var plan = DownloadPlan(manifest: manifest(chunks: 100), configuration: configuration)
        plan.addPeer(id: 0, name: "fast", score: PeerScore(responseTime: 0.001), available: nil)
        plan.addPeer(id: 1, name: "slow", score: PeerScore(responseTime: 0.2), available: nil)
        let first = plan.nextRequests(now: 0)
        // fast: 16 KiB in 1 ms, 16 MB/s; its deadline is the minimum.
        let fast = first.filter { $0.peer == 0 }
        _ = plan.received(peer: 0, chunk: fast[0].chunk, now: 0.001)
        #expect(plan.deadline(of: plan.peers[0]!) == 0.5)
        // slow: 200 ms round trip, 1 MB/s assumed: 8 × 0.216 s.
        #expect(abs(plan.deadline(of: plan.peers[1]!) - 8 * (0.2 + 0.016384)) < 1e-9)
        #expect(plan.overdue(now: 0.4).isEmpty)
        #expect(plan.overdue(now: 0.6).map(\.peer) == [0])
        #expect(plan.overdue(now: 1.8).map(\.peer) == [0, 1])
        plan.silent(peer: 0, reason: "silent")
        #expect(plan.peers[0]?.dropped == "silent" && plan.peers[0]!.score.liveFailures == 1)
        #expect(plan.overdue(now: 1.8).map(\.peer) == [1])
    }

    /// Bytes in flight never pass the budget.
    @Test func byteBudget() {
        var configuration = DownloadPlan.Configuration()
        configuration.maximumBytesInFlight = 5 * 16_384
        configuration.initialWindow = 4
        var plan = DownloadPlan(manifest: manifest(chunks: 50), configuration: configuration)
        for id in 0..<3 { plan.addPeer(id: id, name: "s\(id)", score: PeerScore(responseTime: 0.001), available: nil) }
        #expect(plan.nextRequests(now: 0).count == 5)
        #expect(plan.nextRequests(now: 0).isEmpty)
    }

    /// Resumed chunks are never asked for; "unavailable" is not a failure but is not asked again.
    @Test func resumeAndUnavailable() {
        let m = manifest(chunks: 6)
        var plan = DownloadPlan(manifest: m, have: map(6, [0, 1, 2, 3]))
        plan.addPeer(id: 0, name: "a", score: PeerScore(responseTime: 0.001), available: nil)
        plan.addPeer(id: 1, name: "b", score: PeerScore(responseTime: 0.005), available: nil)
        let requests = plan.nextRequests(now: 0)
        #expect(Set(requests.map(\.chunk)).isSubset(of: [4, 5]))
        let toA = requests.first { $0.peer == 0 }!
        let dropped = plan.failed(peer: 0, chunk: toA.chunk, .unavailable)
        #expect(!dropped)
        #expect(plan.peers[0]!.isActive)
        let again = plan.nextRequests(now: 0.1)
        #expect(!again.contains(DownloadPlan.Request(peer: 0, chunk: toA.chunk)))
    }

    /// A refused chunk stays refused when a refreshed map offers it again, and
    /// a holder that keeps refusing what it announced is dropped as failing.
    @Test func refusalsOutliveRefreshesAndFailTheHolder() {
        var configuration = DownloadPlan.Configuration()
        configuration.refusalsToFail = 3
        configuration.firstChunk = 0
        var plan = DownloadPlan(manifest: manifest(chunks: 8), configuration: configuration)
        plan.addPeer(id: 0, name: "liar", score: PeerScore(responseTime: 0.001), available: nil)
        let first = plan.nextRequests(now: 0).filter { $0.peer == 0 }
        #expect(first.count >= 2)
        let droppedFirst = plan.failed(peer: 0, chunk: first[0].chunk, .unavailable, now: 0.1)
        #expect(!droppedFirst)
        // The tracker says again that it has everything: the refusal holds.
        plan.addPeer(id: 0, name: "liar", score: PeerScore(responseTime: 0.001), available: nil)
        let again = plan.nextRequests(now: 0.2)
        #expect(!again.contains(DownloadPlan.Request(peer: 0, chunk: first[0].chunk)))
        let droppedSecond = plan.failed(peer: 0, chunk: first[1].chunk, .unavailable, now: 0.3)
        #expect(!droppedSecond)
        let more = plan.nextRequests(now: 0.4).filter { $0.peer == 0 } + again.filter { $0.peer == 0 }
        let third = more.first { ![first[0].chunk, first[1].chunk].contains($0.chunk) }!
        let droppedThird = plan.failed(peer: 0, chunk: third.chunk, .unavailable, now: 0.5)
        #expect(droppedThird, "the third refusal drops it")
        #expect(plan.peers[0]!.dropped?.contains("refused 3 chunks") == true)
        #expect(plan.peers[0]!.score.liveFailures == 1)
    }

    /// Chunks nobody has are named; a refusal is an answer, not silence.
    @Test func unobtainableAndRefusals() {
        var plan = DownloadPlan(manifest: manifest(chunks: 4))
        plan.addPeer(id: 0, name: "a", score: PeerScore(responseTime: 0.001), available: map(4, [0, 1]))
        let requests = plan.nextRequests(now: 0)
        #expect(requests.count == 2)
        #expect(plan.unobtainable == [2, 3])
        plan.failed(peer: 0, chunk: requests[0].chunk, .unavailable, now: 1.9)
        #expect(plan.overdue(now: 3).isEmpty, "silent only since the refusal at 1.9 s")
        #expect(plan.overdue(now: 4).map(\.peer) == [0])
    }
}

@Suite("Peer score")
struct PeerScoreTests {
    /// Faster is better; a bad record and live failures cost; successes only dilute failures.
    @Test func ordering() {
        let fast = PeerScore(responseTime: 0.001)
        let slow = PeerScore(responseTime: 0.010)
        #expect(fast.value(chunkSize: 1) < slow.value(chunkSize: 1))
        let failing = PeerScore(responseTime: 0.001, countDownloads: 1, countFailures: 5)
        #expect(failing.value(chunkSize: 1) > fast.value(chunkSize: 1) * 2.5)
        let veteran = PeerScore(responseTime: 0.001, countDownloads: 50, countFailures: 0)
        #expect(veteran.value(chunkSize: 1) == fast.value(chunkSize: 1))
        #expect(PeerScore(responseTime: 0.001, countDownloads: 0, countFailures: 1000).reputation < 5.01)
        var live = fast
        live.observeFailure()
        #expect(abs(live.value(chunkSize: 1) - fast.value(chunkSize: 1) * 1.25) < 1e-12)
    }

    /// Throughput, once measured, dominates the time estimate for big chunks.
    @Test func throughputCounts() {
        var a = PeerScore(responseTime: 0.001)
        var b = PeerScore(responseTime: 0.001)
        a.observeChunk(bytes: 1_000_000, seconds: 0.01)   // 100 MB/s
        b.observeChunk(bytes: 1_000_000, seconds: 0.1)    // 10 MB/s
        #expect(a.value(chunkSize: 1 << 20) < b.value(chunkSize: 1 << 20))
        #expect(a.liveSuccesses == 1)
    }
}
