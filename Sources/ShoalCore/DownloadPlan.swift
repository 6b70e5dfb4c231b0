/// The download engine's brain, as a value fed events: which chunk to ask of
/// which holder next, what a reply or a failure changes, when a holder is
/// dropped, and when the file is complete. It does no I/O and reads no clock:
/// the driver passes the time in, performs the requests the plan returns and
/// feeds back what happened, so every policy here is tested without sockets.
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
/// - **Endgame.** When every missing chunk is already in flight, an idle
///   holder may ask for one of them too (at most two holders per chunk, never
///   twice the same holder), so one slow holder cannot hold the download at 99 %.
///   The first verified copy wins; the other reply is ignored.
/// - **Failures drop.** A holder that sends a bad chunk, a malformed reply or
///   nothing in time is dropped for this download; its chunks go to the others.
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
        /// Holders asked for the same chunk in the endgame, at most.
        public var endgameCopies = 2
        /// Where ties in rarity start (wrapping around the file): nil draws
        /// it at random; tests pin it.
        public var firstChunk: Int?
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
        public fileprivate(set) var inFlight: [Int: Double] = [:]
        public fileprivate(set) var window: Int
        public fileprivate(set) var dropped: String?
        public fileprivate(set) var chunksServed = 0
        public fileprivate(set) var bytesServed = 0
        fileprivate var lastArrival: Double?
        fileprivate var refused: Set<Int> = []

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
    /// How many active holders have each chunk; rebuilt only when holders change.
    private var rarityCache: [Int]?
    /// Where ties in rarity start (see ``Configuration/firstChunk``).
    public let firstChunk: Int

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
        self.firstChunk = ((configuration.firstChunk ?? Int.random(in: 0..<count)) % count + count) % count
    }

    // MARK: State

    public var isComplete: Bool { have.isComplete }
    public var missingCount: Int { chunkCount - have.heldCount }
    public var activePeers: [Peer] { peers.values.filter(\.isActive).sorted { $0.id < $1.id } }
    public var inFlightCount: Int { owners.count }

    /// Missing chunks no active holder has: the download cannot finish unless holders come.
    public var unobtainable: [Int] {
        (0..<chunkCount).filter { index in
            !have.contains(index) && !peers.values.contains { $0.isActive && $0.has(index) }
        }
    }

    // MARK: Events

    /// A holder joins (or its chunk map is refreshed).
    public mutating func addPeer(id: PeerID, name: String, score: PeerScore, available: ChunkMap?) {
        rarityCache = nil
        if var existing = peers[id] {
            existing.available = available
            existing.refused = []
            peers[id] = existing
            return
        }
        peers[id] = Peer(id: id, name: name, score: score, available: available, window: configuration.initialWindow)
    }

    /// The requests to make now to fill every active holder's window.
    public mutating func nextRequests(now: Double) -> [Request] {
        var requests: [Request] = []
        if rarityCache == nil { rarityCache = availability() }
        let rarity = rarityCache!
        let order = peers.values.filter(\.isActive).sorted {
            $0.score.value(chunkSize: chunkSize) < $1.score.value(chunkSize: chunkSize)
        }.map(\.id)
        var progress = true
        // Round-robin over holders, best first, one request each per pass, so
        // the first holder does not take every chunk before the others start.
        while progress {
            progress = false
            for id in order {
                guard let peer = peers[id], peer.inFlight.count < peer.window else { continue }
                guard let chunk = pick(for: peer, rarity: rarity) else { continue }
                let length = lengthOf(chunk)
                guard bytesInFlight + length <= configuration.maximumBytesInFlight || bytesInFlight == 0 else { return requests }
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
        /// New: write it (already done by the driver) and count it.
        case accepted
        /// Another holder's copy won the endgame race: ignore this one.
        case duplicate
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
        if peer.inFlight.isEmpty { peer.lastArrival = nil }
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
        return .accepted
    }

    /// `peer` failed on `chunk`. Returns whether the holder is now dropped.
    @discardableResult
    public mutating func failed(peer id: PeerID, chunk: Int, _ failure: Failure) -> Bool {
        release(id, chunk)
        guard peers[id] != nil else { return false }
        switch failure {
        case .unavailable:
            peers[id]!.refused.insert(chunk)
            return false
        case let .badData(reason), let .unresponsive(reason):
            peers[id]!.score.observeFailure()
            drop(peer: id, reason: reason)
            return true
        }
    }

    /// Drops a holder: its requests go back to the pool.
    public mutating func drop(peer id: PeerID, reason: String) {
        guard var peer = peers[id], peer.isActive else { return }
        rarityCache = nil
        for chunk in peer.inFlight.keys {
            bytesInFlight -= lengthOf(chunk)
            owners[chunk]?.removeAll { $0 == id }
            if owners[chunk]?.isEmpty == true { owners.removeValue(forKey: chunk) }
        }
        peer.inFlight = [:]
        peer.dropped = reason
        peers[id] = peer
    }

    /// Requests older than `timeout` seconds at `now`: the driver fails them as unresponsive.
    public func overdue(now: Double, timeout: Double) -> [Request] {
        peers.values.flatMap { peer in
            peer.inFlight.filter { now - $0.value > timeout }.map { Request(peer: peer.id, chunk: $0.key) }
        }
    }

    // MARK: Picking

    private mutating func release(_ id: PeerID, _ chunk: Int) {
        guard peers[id]?.inFlight.removeValue(forKey: chunk) != nil else { return }
        bytesInFlight -= lengthOf(chunk)
        owners[chunk]?.removeAll { $0 == id }
        if owners[chunk]?.isEmpty == true { owners.removeValue(forKey: chunk) }
    }

    /// How many active holders have each chunk.
    private func availability() -> [Int] {
        var counts = [Int](repeating: 0, count: chunkCount)
        for peer in peers.values where peer.isActive {
            if let map = peer.available {
                for index in map.indices { counts[index] += 1 }
            } else {
                for index in 0..<chunkCount { counts[index] += 1 }
            }
        }
        return counts
    }

    private func pick(for peer: Peer, rarity: [Int]) -> Int? {
        var best: Int?
        var endgame: Int?
        for offset in 0..<chunkCount {
            let index = (firstChunk + offset) % chunkCount
            guard !have.contains(index) && peer.has(index) else { continue }
            if let askers = owners[index] {
                // Endgame candidate: in flight elsewhere, not with this holder.
                if endgame == nil, !askers.contains(peer.id), askers.count < configuration.endgameCopies { endgame = index }
                continue
            }
            if best == nil || rarity[index] < rarity[best!] { best = index }
            if rarity[index] <= 1 { break }
        }
        if let best { return best }
        // Endgame only once nothing unrequested is left anywhere.
        let unrequested = (0..<chunkCount).contains { !have.contains($0) && owners[$0] == nil }
        return unrequested ? nil : endgame
    }
}
