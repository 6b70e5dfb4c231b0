/// The download engine's brain, as a value fed events: which chunk to ask of
/// which holder next, what a reply or a failure changes, when a late request
/// is asked of someone else, when a holder is dropped, and when the file is
/// complete. It does no I/O and reads no clock: the driver passes the time
/// in, performs the requests the plan returns, cancels the ones it says to
/// cancel, and feeds back what happened, so every policy here is tested
/// without sockets.
///
/// Policies:
/// - **Windows grow with throughput.** A holder may have `window` requests in
///   flight: about what it delivers in ``Configuration/targetQueueSeconds``
///   at its measured throughput, at least 2 and at most
///   ``Configuration/maximumWindow``. All windows together stay under
///   ``Configuration/maximumBytesInFlight`` (the downloader's memory bound).
/// - **Best holders first.** Free window slots are filled in ``PeerScore``
///   order, so fast, reliable holders get more of the file.
/// - **Rarest first.** Among the chunks a holder has, the one fewest active
///   holders have is asked first, so a chunk only a leaving peer has is
///   fetched while it can be. Ties go to the first in file order from a
///   starting chunk each download draws at random
///   (``Configuration/firstChunk``): downloaders that start together then
///   hold different chunks early, and have something to give each other.
///   A ``ChunkPicker`` keeps that order ready for each holder, so a pick costs
///   O(1) whatever the chunk count.
/// - **Each holder has its own clock.** From its round trip and measured
///   throughput the plan expects each request it has in flight by a certain
///   time (the head of its queue one service time after the previous
///   arrival, the next one service time later, and so on). A holder whose
///   head request is past that time by more than its slack is *late*: it gets
///   no new requests until something arrives from it (then one at a time, as
///   a probe, once its queue has drained).
/// - **Late chunks are asked of another holder, first copy wins.** A holder
///   with a free slot and nothing new to fetch may ask for a chunk already in
///   flight elsewhere (at most ``Configuration/endgameCopies`` holders per
///   chunk, never twice the same one) when that chunk is late, or when the
///   copy would arrive, and its cancel reach the first holder, before that
///   holder would have begun to send it (see
///   ``Configuration/committedChunks``). The latest-expected chunks are
///   copied first: the tail of a slow holder's queue moves to a fast one,
///   while the chunk the slow one is sending stays with it. The first
///   verified copy is kept; the plan tells the driver to cancel the other
///   requests for it. So one slow or stalled holder cannot hold the download
///   at 99 %, equally fast holders do not duplicate each other's work, and a
///   copy seldom crosses a link for nothing.
/// - **Deadlines drop.** A holder from which nothing has arrived for
///   ``deadline(of:)`` (several times its expected service time, at least
///   ``Configuration/minimumDeadline``) while it owes requests is dropped for
///   this download, as is one that sends a bad chunk or a malformed reply;
///   its requests go to the others.
public struct DownloadPlan: Sendable {
    public typealias PeerID = Int

    public struct Configuration: Sendable {
        /// Requests in flight to one holder, at most.
        public var maximumWindow = 16
        /// Requests in flight to one holder before its throughput is known.
        public var initialWindow = 2
        /// Queue about this many seconds of a holder's throughput.
        public var targetQueueSeconds = 0.25
        /// Bytes of requested chunks in flight over all holders, at most: what
        /// bounds the downloader's memory. 16 MiB kept a 1 GiB download from
        /// four local seeders as fast as 32 did (a chunk in flight on
        /// loopback lasts milliseconds) with a peak 11 MiB lower, and covers
        /// 320 MB/s at a 50 ms round trip.
        public var maximumBytesInFlight = 16 * 1024 * 1024
        /// Holders asked for the same chunk at once, at most.
        public var endgameCopies = 2
        /// How many chunks ahead of the one on the wire a holder is taken to
        /// have handed to its socket already (its send buffer and pending
        /// writes, which a cancel cannot take back). A chunk not late is
        /// copied only if the copy can arrive, and the cancel of the first
        /// request reach its holder, before that holder gets this close to
        /// it: otherwise both copies cross the links and one is wasted.
        public var committedChunks = 3.0
        /// Where ties in rarity start (wrapping around the file): nil draws
        /// it at random; tests pin it.
        public var firstChunk: Int?
        /// The throughput assumed of a holder before its first chunk arrives,
        /// in bytes per second: what its first deadlines are reckoned from.
        public var assumedThroughput = 1_000_000.0
        /// A request is late once it is this many times its expected service
        /// time (round trip plus one chunk) past when it was expected...
        public var lateFactor = 2.0
        /// ...and at least this many seconds past it: scheduling noise on a
        /// busy machine is not lateness.
        public var minimumSlack = 0.05
        /// A holder that owes requests and has sent nothing for this many
        /// times its expected service time is dropped...
        public var deadlineFactor = 8.0
        /// ...but never before this many seconds of silence.
        public var minimumDeadline = 2.0
        /// A holder that refuses this many chunks its own map offered is
        /// dropped as failing: refusals cost nothing to send, and a holder
        /// that announces what it cannot serve wastes everyone's requests.
        public var refusalsToFail = 4
        public init() {}
    }

    /// Why a holder failed.
    public enum Failure: Sendable, Equatable {
        /// It sent bytes that are not the chunk (bad hash, wrong chunk, bad length, bad frame).
        case badData(String)
        /// It did not answer in time, or the connection broke.
        case unresponsive(String)
        /// It says it does not have the chunk: not its fault, just ask someone else.
        case unavailable
    }

    /// A holder as the plan sees it.
    public struct Peer: Sendable {
        public let id: PeerID
        public var name: String
        public var score: PeerScore
        /// The chunks it has; nil means all.
        public var available: ChunkMap?
        /// Chunks asked of it and not answered yet, with when each was asked.
        public fileprivate(set) var inFlight: [Int: Double] = [:]
        public fileprivate(set) var window: Int
        public fileprivate(set) var dropped: String?
        public fileprivate(set) var chunksServed = 0
        public fileprivate(set) var bytesServed = 0
        /// When its last reply (verified chunk or refusal) arrived, while it owed more.
        fileprivate var lastArrival: Double?
        /// When its first and its latest chunk arrived, and how many have:
        /// its long-run pace (see ``DownloadPlan/steadyServiceTime(_:)``).
        fileprivate var firstChunkAt: Double?
        fileprivate var latestChunkAt: Double?
        fileprivate var chunksArrived = 0
        /// Whether its head request went past its slack with nothing arriving since.
        public fileprivate(set) var isLate = false
        /// Chunks it refused: never asked of it again in this download, even
        /// when a refreshed map offers them again.
        public fileprivate(set) var refused: Set<Int> = []

        public func has(_ index: Int) -> Bool {
            !refused.contains(index) && (available?.contains(index) ?? true)
        }
        public var isActive: Bool { dropped == nil }
    }

    /// A request to make.
    public struct Request: Sendable, Equatable, Hashable {
        public var peer: PeerID
        public var chunk: Int
        public init(peer: PeerID, chunk: Int) {
            self.peer = peer
            self.chunk = chunk
        }
    }

    public let chunkCount: Int
    public let chunkSize: Int
    public let configuration: Configuration
    public private(set) var have: ChunkMap
    public private(set) var peers: [PeerID: Peer] = [:]
    /// Who each in-flight chunk was asked of.
    private var owners: [Int: [PeerID]] = [:]
    private var bytesInFlight = 0
    private let lengthOf: @Sendable (Int) -> Int
    /// Which wanted chunk each active holder should be asked for next.
    private var picker: ChunkPicker
    /// Where ties in rarity start (see ``Configuration/firstChunk``).
    public var firstChunk: Int { picker.firstChunk }

    /// A plan for a file of `chunkCount` chunks; `have` are those already verified (resume).
    public init(manifest: Manifest, have: ChunkMap? = nil, configuration: Configuration = Configuration()) {
        self.chunkCount = manifest.chunkCount
        self.chunkSize = Int(manifest.chunkSize)
        self.configuration = configuration
        self.have = have ?? ChunkMap(count: manifest.chunkCount)
        let size = manifest.fileSize
        let chunk = UInt64(manifest.chunkSize)
        self.lengthOf = { index in Int(min(chunk, size - UInt64(index) * chunk)) }
        let count = max(manifest.chunkCount, 1)
        let first = ((configuration.firstChunk ?? Int.random(in: 0..<count)) % count + count) % count
        self.picker = ChunkPicker(chunkCount: manifest.chunkCount, have: self.have, firstChunk: first)
    }

    // MARK: State

    public var isComplete: Bool { have.isComplete }
    public var missingCount: Int { chunkCount - have.heldCount }
    public var activePeers: [Peer] { peers.values.filter(\.isActive).sorted { $0.id < $1.id } }
    /// Chunks in flight (each counted once, however many holders were asked).
    public var inFlightCount: Int { owners.count }

    /// How many missing chunks no active holder has. O(1).
    public var unobtainableCount: Int { picker.unobtainableCount }

    /// Missing chunks no active holder has: the download cannot finish unless
    /// holders come. Walks the file: for diagnostics.
    public var unobtainable: [Int] {
        (0..<chunkCount).filter { index in
            !have.contains(index) && !peers.values.contains { $0.isActive && $0.has(index) }
        }
    }

    // MARK: Each holder's clock

    /// Seconds `peer` is expected to take per chunk once its pipeline runs.
    func serviceTime(_ peer: Peer) -> Double {
        Double(chunkSize) / (peer.score.throughput ?? configuration.assumedThroughput)
    }

    /// When each of `peer`'s requests is expected, in the order it will answer them.
    func expectations(_ peer: Peer) -> [(chunk: Int, expected: Double)] {
        let queue = peer.inFlight.sorted { $0.value < $1.value || ($0.value == $1.value && $0.key < $1.key) }
        guard let head = queue.first else { return [] }
        let service = serviceTime(peer)
        // The head comes one round trip plus one service time after it was
        // asked, and not before one service time after the previous arrival.
        var next = max(head.value + peer.score.responseTime, peer.lastArrival ?? -.infinity) + service
        var out: [(Int, Double)] = []
        for (chunk, asked) in queue {
            next = max(next, asked + peer.score.responseTime + service)
            out.append((chunk, next))
            next += service
        }
        return out
    }

    /// When the head of `peer`'s queue is expected: the first of
    /// ``expectations(_:)`` without sorting the queue.
    func headExpected(_ peer: Peer) -> Double? {
        guard let oldest = peer.inFlight.values.min() else { return nil }
        return max(oldest + peer.score.responseTime, peer.lastArrival ?? -.infinity) + serviceTime(peer)
    }

    /// How far past its expected time a request of `peer` may run before it is late.
    func slack(_ peer: Peer) -> Double {
        max(configuration.minimumSlack, configuration.lateFactor * (peer.score.responseTime + serviceTime(peer)))
    }

    /// How long `peer` may stay silent while it owes requests before it is dropped.
    public func deadline(of peer: Peer) -> Double {
        max(configuration.minimumDeadline, configuration.deadlineFactor * (peer.score.responseTime + serviceTime(peer)))
    }

    // MARK: Events

    /// A holder joins (or its chunk map is refreshed).
    public mutating func addPeer(id: PeerID, name: String, score: PeerScore, available: ChunkMap?) {
        if var existing = peers[id] {
            guard existing.isActive else { return }
            existing.available = available
            peers[id] = existing
        } else {
            peers[id] = Peer(id: id, name: name, score: score, available: available, window: configuration.initialWindow)
        }
        picker.setHolder(id, available: available)
        // A new map does not undo refusals: what it refused stays refused.
        for chunk in peers[id]!.refused where chunk >= 0 && chunk < chunkCount { picker.holder(id, refused: chunk) }
    }

    /// A partial holder announced more chunks.
    public mutating func peer(_ id: PeerID, gained chunks: [Int]) {
        guard var peer = peers[id], peer.isActive, peer.available != nil else { return }
        for chunk in chunks where chunk >= 0 && chunk < chunkCount { peer.available!.insert(chunk) }
        peers[id] = peer
        picker.holder(id, gained: chunks.filter { $0 >= 0 && $0 < chunkCount })
    }

    /// The requests to make now: every active holder's free window slots,
    /// filled with new chunks first and, once a holder has nothing new to
    /// fetch, with copies of late chunks. With `share`, no holder gets more
    /// than that many chunks in all (served and in flight): while others are
    /// still connecting, the first to answer may not take a whole small file.
    public mutating func nextRequests(now: Double, share: Int? = nil) -> [Request] {
        refreshLateness(now: now)
        var requests: [Request] = []
        let order = peers.values.filter(\.isActive).sorted {
            $0.score.value(chunkSize: chunkSize) < $1.score.value(chunkSize: chunkSize)
        }.map(\.id)
        var progress = true
        var copies: [Int: CopyCandidate]?
        let finish = finishTime(now: now)
        // Round-robin over holders, best first, one request each per pass, so
        // the first holder does not take every chunk before the others start.
        while progress {
            progress = false
            for id in order {
                guard let peer = peers[id], peer.inFlight.count < capacity(peer),
                      share.map({ peer.chunksServed + peer.inFlight.count < $0 }) ?? true else { continue }
                var chunk = picker.pick(for: id)
                if let picked = chunk, let finish, !bringsInTime(peer, chunk: picked, finish: finish, now: now) { chunk = nil }
                if chunk == nil {
                    // Nothing new for it: maybe a copy of a chunk someone else is slow with.
                    if copies == nil { copies = copyCandidates(now: now) }
                    chunk = pickCopy(for: peer, candidates: &copies!, now: now)
                }
                guard let chunk else { continue }
                let length = lengthOf(chunk)
                guard bytesInFlight + length <= configuration.maximumBytesInFlight || bytesInFlight == 0 else { return requests }
                if peers[id]!.inFlight.isEmpty { peers[id]!.lastArrival = nil }
                picker.requested(chunk)
                peers[id]!.inFlight[chunk] = now
                owners[chunk, default: []].append(id)
                bytesInFlight += length
                requests.append(Request(peer: id, chunk: chunk))
                progress = true
            }
        }
        return requests
    }

    /// What a verified chunk changed.
    public enum Received: Sendable, Equatable {
        /// New: write it (already done by the driver) and count it. Other
        /// holders still asked for it are to be cancelled.
        case accepted(cancel: [Request])
        /// Another holder's copy won: ignore this one.
        case duplicate

        /// Whether the chunk was new.
        public var isAccepted: Bool { if case .accepted = self { true } else { false } }
    }

    /// `peer` delivered `chunk`, verified, at `now`.
    public mutating func received(peer id: PeerID, chunk: Int, now: Double) -> Received {
        guard var peer = peers[id], let asked = peer.inFlight.removeValue(forKey: chunk) else { return .duplicate }
        let length = lengthOf(chunk)
        bytesInFlight -= length
        owners[chunk]?.removeAll { $0 == id }
        if owners[chunk]?.isEmpty == true { owners.removeValue(forKey: chunk) }
        // Under pipelining a reply waits behind the ones before it: its service
        // time is the gap since the previous arrival, not since its request.
        let since = peer.lastArrival.map { max($0, asked) } ?? asked
        peer.score.observeChunk(bytes: length, seconds: now - since)
        peer.lastArrival = now
        peer.firstChunkAt = peer.firstChunkAt ?? now
        peer.latestChunkAt = now
        peer.chunksArrived += 1
        peer.isLate = false
        if let throughput = peer.score.throughput {
            let wanted = Int((throughput * configuration.targetQueueSeconds / Double(chunkSize)).rounded(.up)) + 1
            peer.window = min(configuration.maximumWindow, max(configuration.initialWindow, wanted))
        }
        guard !have.contains(chunk) else {
            peers[id] = peer
            return .duplicate
        }
        peer.chunksServed += 1
        peer.bytesServed += length
        peers[id] = peer
        have.insert(chunk)
        picker.completed(chunk)
        // The race is won: the other holders asked for it are released.
        let losers = owners.removeValue(forKey: chunk) ?? []
        for other in losers where peers[other]?.inFlight.removeValue(forKey: chunk) != nil {
            bytesInFlight -= length
        }
        return .accepted(cancel: losers.map { Request(peer: $0, chunk: chunk) })
    }

    /// `peer` failed on `chunk`. Returns whether the holder is now dropped.
    @discardableResult
    public mutating func failed(peer id: PeerID, chunk: Int, _ failure: Failure, now: Double? = nil) -> Bool {
        release(id, chunk)
        guard peers[id] != nil else { return false }
        switch failure {
        case .unavailable:
            // A refusal is an answer: the holder is alive. But it offered the
            // chunk, so it loses it for this download, and too many refusals
            // make it a failing holder.
            guard peers[id]!.isActive else { return false }
            peers[id]!.refused.insert(chunk)
            if chunk >= 0 && chunk < chunkCount { picker.holder(id, refused: chunk) }
            if let now, !peers[id]!.inFlight.isEmpty { peers[id]!.lastArrival = now }
            peers[id]!.isLate = false
            if peers[id]!.refused.count >= configuration.refusalsToFail {
                peers[id]!.score.observeFailure()
                drop(peer: id, reason: "refused \(peers[id]!.refused.count) chunks it announced")
                return true
            }
            return false
        case let .badData(reason), let .unresponsive(reason):
            guard peers[id]!.isActive else { return false }
            peers[id]!.score.observeFailure()
            drop(peer: id, reason: reason)
            return true
        }
    }

    /// `peer` stayed silent past its deadline (see ``overdue(now:)``): a
    /// failure of that holder, which is dropped.
    public mutating func silent(peer id: PeerID, reason: String) {
        guard peers[id]?.isActive == true else { return }
        peers[id]!.score.observeFailure()
        drop(peer: id, reason: reason)
    }

    /// Drops a holder: its requests go back to the pool. Returns them, for the driver to cancel.
    @discardableResult
    public mutating func drop(peer id: PeerID, reason: String) -> [Request] {
        guard var peer = peers[id], peer.isActive else { return [] }
        let owed = peer.inFlight.keys.sorted()
        peer.inFlight = [:]
        peer.dropped = reason
        peers[id] = peer
        picker.removeHolder(id)
        for chunk in owed { forget(id, chunk) }
        return owed.map { Request(peer: id, chunk: $0) }
    }

    /// Holders that owe requests and have sent nothing within their
    /// ``deadline(of:)`` at `now`, with how long they have been silent: the
    /// driver fails them as unresponsive.
    public func overdue(now: Double) -> [(peer: PeerID, silentFor: Double)] {
        peers.values.filter(\.isActive).compactMap { peer in
            guard let oldest = peer.inFlight.values.min() else { return nil }
            let silentSince = max(oldest, peer.lastArrival ?? oldest)
            let silence = now - silentSince
            return silence > deadline(of: peer) ? (peer.id, silence) : nil
        }.sorted { $0.peer < $1.peer }
    }

    /// The earliest time after `now` at which a request becomes late or a
    /// holder overdue: when the driver should look again if nothing arrives.
    public func nextCheck(after now: Double) -> Double? {
        var earliest: Double?
        for peer in peers.values where peer.isActive && !peer.inFlight.isEmpty {
            if let head = headExpected(peer), !peer.isLate {
                let late = head + slack(peer)
                if late > now { earliest = min(earliest ?? late, late) }
            }
            let oldest = peer.inFlight.values.min()!
            let due = max(oldest, peer.lastArrival ?? oldest) + deadline(of: peer)
            if due > now { earliest = min(earliest ?? due, due) }
        }
        return earliest
    }

    // MARK: The end of the download

    /// When every missing chunk, those in flight included, would have
    /// arrived if each went to whichever holder brings it soonest: the
    /// smallest `t` by which the holders deliver that many, each one per
    /// chunk time at its steady pace from its next expected arrival (an idle one, one round
    /// trip plus one service time from now). Nil with one holder, and while
    /// every holder will be busy to the end anyway, which is most of a
    /// download (cheap to tell: no holder's full window reaches past `now`
    /// plus the missing chunks at all holders' rates together).
    public func finishTime(now: Double) -> Double? {
        let holders = peers.values.filter { $0.isActive && !$0.isLate }
        guard holders.count > 1 else { return nil }
        let remaining = picker.wantedCount + inFlightCount
        guard remaining > 0 else { return nil }
        var rate = 0.0
        var latestNext = -Double.infinity
        for peer in holders {
            let service = steadyServiceTime(peer)
            rate += 1 / service
            // Its queue, once this round of requests has filled its window.
            latestNext = max(latestNext, now + peer.score.responseTime + Double(max(peer.inFlight.count, peer.window) + 1) * service)
        }
        guard latestNext > now + Double(remaining) / rate else { return nil }
        let pipelines = holders.map { peer -> (start: Double, service: Double) in
            let service = steadyServiceTime(peer)
            let first = headExpected(peer) ?? now + peer.score.responseTime + service
            return (max(first, now) - service, service)
        }
        func delivered(by t: Double) -> Int {
            pipelines.reduce(0) { $0 + ($1.start < t ? Int(((t - $1.start) / $1.service + 1e-9).rounded(.down)) : 0) }
        }
        var low = now
        var high = pipelines.map { $0.start + Double(remaining) * $0.service }.min()!
        for _ in 0..<48 where high - low > 1e-6 {
            let middle = (low + high) / 2
            if delivered(by: middle) >= remaining { high = middle } else { low = middle }
        }
        return high
    }

    /// Whether `peer` should be asked for the new chunk `chunk` now: near
    /// the end (see ``finishTime(now:)``), only if it would bring it, with
    /// two of its chunk times to spare, before the holders together could
    /// have brought everything, or if no other holder that has the chunk
    /// would bring it sooner were it asked now. A slow holder's queue then
    /// runs dry as the others finish, instead of holding the last chunks,
    /// which a fast one would have to copy (wasting both links' bytes) or
    /// wait for. A holder no chunk has timed yet is always asked: only its
    /// chunks can tell its pace (at most its first window of them).
    ///
    /// Times are reckoned at each holder's steady pace
    /// (``steadyServiceTime(_:)``), and the two chunk times to spare are
    /// because its chunks come no more regularly than that (a lossy link
    /// halves its rate after each loss): one that ends late holds up the
    /// whole file, while a chunk left to the others costs them a fraction
    /// of their time.
    private func bringsInTime(_ peer: Peer, chunk: Int, finish: Double, now: Double) -> Bool {
        // Not timed yet: its first chunks are how it gets timed (at most its first window).
        if peer.score.throughput == nil { return true }
        let arrival = steadyArrivalOfNext(peer, now: now)
        if arrival + 2 * steadyServiceTime(peer) <= finish + 1e-6 { return true }
        return !peers.values.contains { other in
            other.id != peer.id && other.isActive && !other.isLate && other.has(chunk) && steadyArrivalOfNext(other, now: now) < arrival
        }
    }

    // MARK: Lateness and copies

    /// How many requests `peer` may have in flight now: its window, or one
    /// (a probe, once its queue has drained) while it is late.
    private func capacity(_ peer: Peer) -> Int {
        peer.isLate ? (peer.inFlight.isEmpty ? 1 : 0) : peer.window
    }

    private mutating func refreshLateness(now: Double) {
        for (id, peer) in peers where peer.isActive && !peer.isLate {
            guard let head = headExpected(peer) else { continue }
            if now > head + slack(peer) { peers[id]!.isLate = true }
        }
    }

    /// An in-flight chunk as a copy would see it.
    struct CopyCandidate {
        /// When a copy must arrive to be worth asking for: before its holder
        /// would begin to send it (its expected arrival, less
        /// ``Configuration/committedChunks`` service times, less the half
        /// round trip a cancel takes to reach it); infinity if it is late.
        var useful: Double
        /// Whether it is more than one of its holder's times per chunk past
        /// the time that holder was expected to bring it (not yet late).
        var overdue: Bool
        /// Its holder's time per chunk (round trip plus service time).
        var perChunk: Double
    }

    /// Every in-flight chunk as a copy would see it; a chunk asked of two
    /// holders goes by the sooner.
    private func copyCandidates(now: Double) -> [Int: CopyCandidate] {
        var candidates: [Int: CopyCandidate] = [:]
        for peer in peers.values where peer.isActive {
            let service = serviceTime(peer)
            let lead = configuration.committedChunks * service + peer.score.responseTime / 2
            let perChunk = peer.score.responseTime + service
            for (chunk, at) in expectations(peer) {
                let late = peer.isLate || now > at + slack(peer)
                let this = CopyCandidate(useful: late ? .infinity : at - lead, overdue: now > at + perChunk, perChunk: perChunk)
                if let other = candidates[chunk] {
                    candidates[chunk] = CopyCandidate(useful: min(other.useful, this.useful), overdue: other.overdue && this.overdue,
                                                      perChunk: min(other.perChunk, this.perChunk))
                } else {
                    candidates[chunk] = this
                }
            }
        }
        return candidates
    }

    /// When a chunk asked of `peer` now would arrive: after the requests it
    /// already has, one round trip plus one service time from now at the soonest.
    private func arrivalOfNext(_ peer: Peer, now: Double) -> Double {
        let service = serviceTime(peer)
        let queued = expectations(peer).last?.expected ?? -.infinity
        return max(now + peer.score.responseTime + service, queued + service)
    }

    /// Seconds per chunk `peer` keeps up over its whole download so far, if
    /// slower than its smoothed service time: what the end of a download
    /// reckons with. A lossy link's smoothed rate jumps after each burst of
    /// chunks a recovered loss lets through; its long-run pace does not.
    func steadyServiceTime(_ peer: Peer) -> Double {
        let service = serviceTime(peer)
        guard peer.chunksArrived >= 3, let first = peer.firstChunkAt, let latest = peer.latestChunkAt, latest > first else { return service }
        return max(service, (latest - first) / Double(peer.chunksArrived - 1))
    }

    /// ``arrivalOfNext(_:now:)`` at the holder's steady pace.
    private func steadyArrivalOfNext(_ peer: Peer, now: Double) -> Double {
        let service = steadyServiceTime(peer)
        guard let head = headExpected(peer) else { return now + peer.score.responseTime + service }
        // The head as its clock expects it, then the rest of its queue and this one at the steady pace.
        return max(head, now) + Double(peer.inFlight.count) * service
    }

    /// The in-flight chunk `peer` should copy: a late one; one of a slower
    /// holder that its copy from `peer` would bring before that holder
    /// begins to send it; or, as
    /// a last resort of a holder with nothing else to do, one overdue by
    /// more than a chunk's time at a holder more than twice as slow per
    /// chunk (a lossy link stuck on the last chunk of its queue, where no
    /// later packet tells TCP of a loss: its bytes may be wasted, but not
    /// its time). Never one
    /// it was asked already, nor one with ``Configuration/endgameCopies``
    /// holders on it. Late chunks first, then the latest useful, then file order.
    private func pickCopy(for peer: Peer, candidates: inout [Int: CopyCandidate], now: Double) -> Int? {
        let arrival = arrivalOfNext(peer, now: now)
        let own = peer.score.responseTime + serviceTime(peer)
        var best: (chunk: Int, useful: Double)?
        for (chunk, candidate) in candidates {
            let late = candidate.useful == .infinity
            guard late || (arrival < candidate.useful && candidate.perChunk > own) || (candidate.overdue && candidate.perChunk > 2 * own),
                  let askers = owners[chunk], askers.count < configuration.endgameCopies,
                  !askers.contains(peer.id), peer.has(chunk) else { continue }
            let useful = candidate.useful
            if best == nil || useful > best!.useful || (useful == best!.useful && chunk < best!.chunk) { best = (chunk, useful) }
        }
        guard let best else { return nil }
        candidates.removeValue(forKey: best.chunk)
        return best.chunk
    }

    // MARK: Picking

    private mutating func release(_ id: PeerID, _ chunk: Int) {
        guard peers[id]?.inFlight.removeValue(forKey: chunk) != nil else { return }
        forget(id, chunk)
    }

    /// `chunk` is no longer in flight with `id`: if nobody else has it in
    /// flight and it is still missing, it is wanted again.
    private mutating func forget(_ id: PeerID, _ chunk: Int) {
        bytesInFlight -= lengthOf(chunk)
        owners[chunk]?.removeAll { $0 == id }
        guard owners[chunk]?.isEmpty ?? true else { return }
        owners.removeValue(forKey: chunk)
        if !have.contains(chunk) { picker.returned(chunk) }
    }
}
