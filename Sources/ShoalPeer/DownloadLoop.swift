import Foundation
import Logging
import NIOCore
import ShoalCore
import ShoalNet
import ShoalWire

/// The event loop of one download, over a ``DownloadPlan``.
///
/// Everything slow happens elsewhere and reports back as events: connecting
/// to a holder and timing it, and asking the tracker for holders, in tasks of
/// their own; a chunk (``ChunkFetch``) is verified and written by the task
/// that reads its holder's connection. The loop takes one event at a time, hands
/// it to its handler, which feeds the plan, then performs what the plan says:
/// the requests to make, the requests to cancel (a copy lost the race, a
/// holder was dropped), the holders to drop for silence. A clock task wakes
/// it when a request may have become late. Nothing here waits on the network
/// itself, so one slow holder or an unreachable address never stalls the
/// others.
///
/// The loop ends when the plan is complete, when writing fails, when the
/// task running it is cancelled, or when no holder has been able to make
/// progress for ``Downloader/Configuration/patience`` seconds.
final class DownloadLoop {
    enum Event: Sendable {
        case connected(ShoalWire.Holder, FramedConnection, roundTrip: Double)
        case unreachable(ShoalWire.Holder, reason: String)
        /// Not to be used for this download: it cannot prove the key the
        /// tracker lists for it, or it serves in clear and this download encrypts.
        case refused(ShoalWire.Holder, reason: String)
        case chunk(DownloadPlan.Request, ChunkFetch.Outcome)
        /// A request's share of the download budget is there: it may be sent (see ``Fetch/pacing(_:serial:)``).
        case paced(DownloadPlan.Request, serial: Int, acquired: Int)
        case holders([ShoalWire.Holder]?, downloadID: String?)
        /// This machine's inflate-and-verify rate, measured in the background (``InflateCalibration``).
        case calibrated(Double)
        case tick
    }

    /// A holder connected for this download.
    struct Link {
        var user: String
        var host: String
        var port: Int
        var connection: FramedConnection
        var roundTrip: Double
    }

    /// A request the plan made, in flight.
    enum Fetch {
        /// Sent on its holder's connection as this request id.
        case sent(UInt32)
        /// Waiting in a task of its own for its share of the download budget
        /// (only with `--max-download`); `serial` tells it from a later
        /// request for the same chunk of the same holder.
        case pacing(Task<Void, Never>, serial: Int)
    }

    /// How the loop ended, when it did not complete the file.
    enum Ending {
        case complete
        case storage(StorageError)
        case cancelled
        case gaveUp
    }

    let name: FileName
    let manifest: Manifest
    let partial: PartialDownload
    let session: TrackerSession
    let logger: Logger
    let configuration: Downloader.Configuration
    let progress: @Sendable (DownloadProgress) -> Void
    /// The announce of the partial file (with its manifest), sent as the
    /// loop starts: chunk announcements wait for it, so the tracker knows
    /// the content before it hears of its chunks.
    let announced: Task<Void, Never>

    private(set) var plan: DownloadPlan
    private(set) var links: [Int: Link] = [:]
    /// The tracker's id for this download, which reports carry: refreshes
    /// send it back, so the holders they list join the same download.
    private(set) var downloadID: String?
    private(set) var fetchedChunks = 0
    private(set) var fetchedBytes: UInt64 = 0
    private(set) var wireBytes: UInt64 = 0

    private let clock = ContinuousClock()
    private let epoch: ContinuousClock.Instant
    /// Where events come in; the loop takes all that came meanwhile at once.
    private let events = EventInbox<Event>()
    private var fetches: [DownloadPlan.Request: Fetch] = [:]
    private var nextSerial = 0
    private var ticker: Task<Void, Never>?
    /// Holders connected or being connected to, by user name.
    private var knownUsers = Set<String>()
    /// The chunk-map version of each partial holder whose map the plan has:
    /// refreshes send them, and the tracker answers with the chunks gained
    /// since instead of whole maps.
    private var mapVersions: [String: UInt64] = [:]
    /// Holders that sent bad data or refused chunks: never asked again in
    /// this download, and the only ones reported as failures.
    private(set) var banned = Set<String>()
    /// Holders that went silent or could not be reached: asked again once
    /// the tracker still lists them after a delay that doubles each time.
    private var retries: [String: (after: Double, delay: Double)] = [:]
    private var connecting = 0
    private var nextID = 0
    private var refreshing = false
    private var lastRefresh = -Double.infinity
    private var newlyHeld: [Int] = []
    private var lastAnnounce = 0.0
    private var lastProgress = -Double.infinity
    private var lastProgressChunks = 0
    private var waitingSince: Double?
    private var ending: Ending?
    private var compression: CompressionChoice

    init(name: FileName, manifest: Manifest, partial: PartialDownload, session: TrackerSession, logger: Logger,
         configuration: Downloader.Configuration, downloadID: String?, announced: Task<Void, Never>,
         progress: @escaping @Sendable (DownloadProgress) -> Void) {
        self.name = name
        self.announced = announced
        self.downloadID = downloadID
        self.manifest = manifest
        self.partial = partial
        self.session = session
        self.logger = logger
        self.configuration = configuration
        self.progress = progress
        self.plan = DownloadPlan(manifest: manifest, have: partial.have, configuration: configuration.plan)
        self.compression = CompressionChoice(mode: configuration.compression, awaitingCalibration: configuration.compression == .auto)
        self.epoch = clock.now
    }

    private var now: Double { (clock.now - epoch).seconds }

    /// Runs until the file is complete or the download cannot go on.
    func run(holders initial: [ShoalWire.Holder]) async -> Ending {
        defer { shutDown() }
        if plan.isComplete { return .complete }
        admit(initial)
        let events = self.events
        if compression.awaitingCalibration {
            Task { events.post(.calibrated(await InflateCalibration.measured())) }
        }
        let interval = configuration.tickInterval
        ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(interval))
                events.post(.tick)
            }
        }
        // Every event that came meanwhile first, then the requests once:
        // with small chunks, several arrive while the loop works, and their
        // requests then leave together.
        while true {
            let batch = await events.next()
            // Empty only when the task running the loop is cancelled.
            if batch.isEmpty { return .cancelled }
            for event in batch {
                handle(event)
                if let ending { return ending }
                if plan.isComplete { return .complete }
            }
            pump()
        }
    }

    private func handle(_ event: Event) {
        switch event {
        case let .connected(holder, connection, roundTrip): onConnected(holder, connection, roundTrip: roundTrip)
        case let .unreachable(holder, reason): onUnreachable(holder, reason: reason)
        case let .refused(holder, reason): onRefused(holder, reason: reason)
        case let .chunk(request, outcome): onChunk(request, outcome)
        case let .paced(request, serial, acquired): onPaced(request, serial: serial, acquired: acquired)
        case let .holders(fresh, id):
            if let id { downloadID = id }
            onHolders(fresh)
        case let .calibrated(capacity): compression.calibrated(capacity)
        case .tick: onTick()
        }
    }

    // MARK: Handlers

    private func onConnected(_ holder: ShoalWire.Holder, _ connection: FramedConnection, roundTrip: Double) {
        connecting -= 1
        let id = nextID
        nextID += 1
        links[id] = Link(user: holder.user, host: holder.host, port: holder.port, connection: connection, roundTrip: roundTrip)
        logger.trace("\(String(format: "%.3f", now)) connected \(holder.user), round trip \(String(format: "%.1f", roundTrip * 1000)) ms")
        mapVersions[holder.user] = holder.mapVersion
        compression.connected(roundTrip: roundTrip)
        plan.addPeer(id: id, name: holder.user,
                     score: PeerScore(responseTime: roundTrip, countDownloads: holder.countDownloads, countFailures: holder.countFailures),
                     available: chunkMap(holder))
    }

    private func onUnreachable(_ holder: ShoalWire.Holder, reason: String) {
        connecting -= 1
        // Not reported: an address that does not answer may be the network's
        // fault, or the downloader's, as much as the holder's.
        logger.notice("holder \(holder.user) at \(Endpoint(host: holder.host, port: holder.port)) cannot be reached: \(reason)")
        retryLater(holder.user)
    }

    /// Not reported to the tracker: who is at fault (the holder, or someone
    /// in between) cannot be told from here.
    private func onRefused(_ holder: ShoalWire.Holder, reason: String) {
        connecting -= 1
        logger.warning("not downloading from \(holder.user) at \(Endpoint(host: holder.host, port: holder.port)): \(reason)")
        banned.insert(holder.user)
    }

    private func onChunk(_ request: DownloadPlan.Request, _ outcome: ChunkFetch.Outcome) {
        fetches.removeValue(forKey: request)
        switch outcome {
        case let .received(frameBytes, compressed):
            wireBytes += UInt64(frameBytes)
            let outcome = plan.received(peer: request.peer, chunk: request.chunk, now: now)
            logger.trace("\(String(format: "%.3f", now)) chunk \(request.chunk) from \(links[request.peer]?.user ?? "?") \(outcome.isAccepted ? "new" : "duplicate"), \(frameBytes) bytes\(compressed ? " compressed" : ""), \(fetches.count) in flight")
            compression.completed(bytes: manifest.length(ofChunk: request.chunk), compressed: compressed, inFlight: fetches.count, now: now,
                                  cpuSeconds: ProcessInfoLite.cpuSeconds)
            guard case let .accepted(cancel) = outcome else { return }
            for loser in cancel { withdraw(loser) }
            fetchedChunks += 1
            fetchedBytes += UInt64(manifest.length(ofChunk: request.chunk))
            newlyHeld.append(request.chunk)
            reportProgress()
        case let .failed(failure):
            if plan.failed(peer: request.peer, chunk: request.chunk, failure, now: now) {
                drop(request.peer, reason: plan.peers[request.peer]?.dropped ?? "failed")
                guard let user = links[request.peer]?.user else { return }
                // Bad data, or refusing what it announced: not asked again in this download.
                switch failure {
                case .badData, .unavailable: banned.insert(user)
                case .unresponsive: retryLater(user)
                }
            }
        case let .storage(error):
            ending = .storage(error)
        }
    }

    /// A request's budget is there: send it, unless it was cancelled meanwhile
    /// (then the budget goes back).
    private func onPaced(_ request: DownloadPlan.Request, serial: Int, acquired: Int) {
        guard case let .pacing(_, current) = fetches[request], current == serial, let link = links[request.peer] else {
            configuration.downloadLimit?.refund(acquired)
            return
        }
        send(request, on: link, acquired: acquired)
    }

    private func onHolders(_ fresh: [ShoalWire.Holder]?) {
        refreshing = false
        guard let fresh else { return }
        // New chunk maps of partial holders we know; then connect to new ones.
        let byUser = Dictionary(fresh.map { ($0.user, $0) }, uniquingKeysWith: { first, _ in first })
        for (id, link) in links {
            guard let holder = byUser[link.user], let peer = plan.peers[id], peer.isActive, peer.available != nil else { continue }
            if let gained = holder.gained {
                plan.peer(id, gained: gained.filter { $0 >= 0 && $0 < manifest.chunkCount })
            } else {
                plan.addPeer(id: id, name: link.user, score: peer.score, available: chunkMap(holder))
            }
            mapVersions[link.user] = holder.mapVersion
        }
        // A holder sent as changes is one we know; a new one comes with its map.
        admit(fresh.filter { $0.gained == nil })
    }

    private func onTick() {
        let t = now
        do throws(StorageError) {
            try partial.recordMap()
        } catch {
            ending = .storage(error)
            return
        }
        for (peer, silence) in plan.overdue(now: t) {
            let reason = String(format: "sent nothing for %.1f s while it owed %d chunk%@", silence,
                                plan.peers[peer]?.inFlight.count ?? 0, plan.peers[peer]?.inFlight.count == 1 ? "" : "s")
            plan.silent(peer: peer, reason: reason)
            drop(peer, reason: reason)
            if let user = links[peer]?.user { retryLater(user) }
        }
        if !newlyHeld.isEmpty && t - lastAnnounce >= 0.5 {
            let batch = newlyHeld
            newlyHeld = []
            lastAnnounce = t
            let (session, name, contentID, announced) = (session, name.value, manifest.contentID, announced)
            Task {
                await announced.value
                await session.announceHave(name: name, contentID: contentID, indices: batch)
            }
        }
        // Requests are made after every event: with none in flight, no
        // holder left has (or will give) any chunk still missing.
        let stuck = plan.activePeers.isEmpty || plan.inFlightCount == 0
        if !refreshing && t - lastRefresh >= configuration.refreshInterval {
            refresh()
        }
        if stuck && connecting == 0 {
            waitingSince = waitingSince ?? t
            if t - waitingSince! > configuration.patience { ending = .gaveUp }
        } else {
            waitingSince = nil
        }
    }

    // MARK: Actions

    /// Makes the requests the plan wants now.
    ///
    /// At the start, while holders are still connecting (for at most
    /// ``Downloader/Configuration/startGrace``), each connected one may take
    /// only its share of the file: the first to answer does not take a whole
    /// small file, and a big one starts on the first link at once rather than
    /// waiting for the slowest to connect.
    private func pump() {
        let holders = links.count + connecting
        let share = connecting > 0 && now < configuration.startGrace && holders > 0
            ? (manifest.chunkCount + holders - 1) / holders : nil
        // For the trace: when the plan reckons the last chunk in (near the end only).
        let finish = logger.logLevel <= .trace ? plan.finishTime(now: now).map { String(format: ", finish %.3f", $0) } ?? "" : ""
        for request in plan.nextRequests(now: now, share: share) {
            guard let link = links[request.peer] else { continue }
            logger.trace("\(String(format: "%.3f", now)) ask \(link.user) for chunk \(request.chunk)\(finish)")
            guard let limit = configuration.downloadLimit else {
                send(request, on: link, acquired: 0)
                continue
            }
            // The request goes once its wire bytes are in the budget.
            let acquired = ChunkFetch.expectedWireBytes(chunk: request.chunk, manifest: manifest)
            let (events, serial) = (events, nextSerial)
            nextSerial += 1
            fetches[request] = .pacing(Task {
                do { try await limit.acquire(acquired) } catch { return }
                events.post(.paced(request, serial: serial, acquired: acquired))
            }, serial: serial)
        }
    }

    /// Sends `request` on its holder's connection; the reply comes back as a `.chunk` event.
    private func send(_ request: DownloadPlan.Request, on link: Link, acquired: Int) {
        let events = events
        let id = ChunkFetch.start(chunk: request.chunk, connection: link.connection, manifest: manifest, partial: partial,
                                  stored: compression.asksStored, timeout: .seconds(Int64(configuration.requestTimeout)),
                                  limit: configuration.downloadLimit, acquired: acquired) { outcome in
            events.post(.chunk(request, outcome))
        }
        fetches[request] = .sent(id)
    }

    /// Cancels a request in flight: withdrawn on the wire (a `chunkCancel`),
    /// or its wait for the budget ended.
    private func withdraw(_ request: DownloadPlan.Request) {
        switch fetches.removeValue(forKey: request) {
        case let .sent(id):
            guard let link = links[request.peer] else { return }
            ChunkFetch.withdraw(chunk: request.chunk, requestID: id, connection: link.connection, contentID: manifest.contentID)
        case let .pacing(task, _):
            task.cancel()
        case nil:
            break
        }
    }

    /// Drops a holder: its requests are cancelled and its connection closed.
    private func drop(_ peer: Int, reason: String) {
        for request in plan.drop(peer: peer, reason: reason) { withdraw(request) }
        for request in fetches.keys where request.peer == peer { withdraw(request) }
        guard let link = links[peer] else { return }
        logger.notice("dropping holder \(link.user) for this download: \(reason)")
        link.connection.close()
    }

    /// Connects to holders not met yet, each in its own task. The first
    /// requests follow the hello at once, without waiting for its answer
    /// (PROTOCOL.md, section 6.1), so a link carries its first chunk one
    /// round trip sooner; the TCP connection's set-up time stands for the
    /// holder's response time until chunks measure it (the original sent a
    /// `checkActive`, a round trip more). A hello that fails fails those
    /// requests, and the holder is dropped and tried again later, as one
    /// that cannot be reached.
    private func admit(_ candidates: [ShoalWire.Holder]) {
        let chunkFrame = Int(manifest.chunkSize) + 4096
        let events = self.events
        let timeout = configuration.connectTimeout
        let receiveStatistics = configuration.receiveStatistics
        let t = now
        for holder in candidates where !knownUsers.contains(holder.user) && !banned.contains(holder.user) && holder.user != session.user {
            if let retry = retries[holder.user], retry.after > t { continue }
            knownUsers.insert(holder.user)
            connecting += 1
            let security: ClientSecurity
            switch HolderLink.security(for: holder, encryptedOnly: configuration.encryptedOnly) {
            case let .success(chosen):
                security = chosen
            case let .failure(refusal):
                events.post(.refused(holder, reason: refusal.reason))
                continue
            }
            Task {
                let start = ContinuousClock.now
                let connection: FramedConnection
                do {
                    // Chunk replies: allocated whole when their header comes (they were asked for, and are bounded).
                    connection = try await FramedConnection.connect(host: holder.host, port: holder.port, role: "peer", timeout: .seconds(Int64(timeout)),
                                                                    maximumPayloadLength: chunkFrame, preallocationLimit: chunkFrame,
                                                                    security: security,
                                                                    statistics: receiveStatistics ?? FrameStatistics(), pipelined: true)
                } catch let error as NetError {
                    if case .fingerprintMismatch = error {
                        events.post(.refused(holder, reason: "\(error)"))
                    } else {
                        events.post(.unreachable(holder, reason: "\(error)"))
                    }
                    return
                } catch {
                    events.post(.unreachable(holder, reason: "\(error)"))
                    return
                }
                // The TCP handshake's round trip times the holder (as a
                // checkActive would, two round trips later).
                let rtt = connection.connectRoundTrip > 0 ? connection.connectRoundTrip : (ContinuousClock.now - start).seconds
                // A loop that ended meanwhile will not close it: close it here.
                if !events.post(.connected(holder, connection, roundTrip: rtt)) { connection.close() }
            }
        }
    }

    /// Lets `user` be connected to again later, if the tracker still lists it:
    /// after 1 s, then 2, 4, up to 16 s.
    private func retryLater(_ user: String) {
        knownUsers.remove(user)
        let delay = min((retries[user]?.delay ?? 0.5) * 2, 16)
        retries[user] = (now + delay, delay)
    }

    /// Asks the tracker for the file's holders, in the background; one request at a time.
    private func refresh() {
        refreshing = true
        lastRefresh = now
        // The maps the plan has (of active partial holders) are asked for as changes only.
        var known: [String: UInt64] = [:]
        for (id, link) in links where plan.peers[id]?.isActive == true && plan.peers[id]?.available != nil {
            if let version = mapVersions[link.user] { known[link.user] = version }
        }
        let (session, contentID, events, id, knownMaps) = (session, manifest.contentID, events, downloadID, known)
        Task {
            let detail = try? await session.details(contentID: contentID, withManifest: false, downloadID: id, knownMaps: knownMaps).first
            events.post(.holders(detail?.holders, downloadID: detail?.downloadID))
        }
    }

    private func reportProgress() {
        // Every 1 % of the chunks or 50 ms, whichever comes first: a snapshot walks the whole chunk map.
        let t = now
        guard t - lastProgress >= 0.05 || (fetchedChunks - lastProgressChunks) * 100 >= manifest.chunkCount else { return }
        lastProgress = t
        lastProgressChunks = fetchedChunks
        progress(snapshot(elapsed: t))
    }

    /// The progress as it is now.
    func snapshot(elapsed: Double) -> DownloadProgress {
        var byHolder: [String: Int] = [:]
        for (id, peer) in plan.peers { byHolder[links[id]?.user ?? peer.name] = peer.chunksServed }
        let done = plan.have.indices.reduce(UInt64(0)) { $0 + UInt64(manifest.length(ofChunk: $1)) }
        return DownloadProgress(name: name.value, totalBytes: manifest.fileSize, doneBytes: done, fetchedBytes: fetchedBytes, elapsed: elapsed,
                                chunksByHolder: byHolder, holdersInUse: plan.activePeers.count)
    }

    private func chunkMap(_ holder: ShoalWire.Holder) -> ChunkMap? {
        holder.chunkMap(count: manifest.chunkCount)
    }

    /// Cancels whatever still runs and closes every holder's connection.
    private func shutDown() {
        for request in Array(fetches.keys) { withdraw(request) }
        try? partial.recordMap()
        ticker?.cancel()
        events.finish()
        // A holder connected after the last batch was taken: its connection is ours to close too.
        for case let .connected(_, connection, _) in events.takeRemaining() { connection.close() }
        for link in links.values { link.connection.close() }
        if !newlyHeld.isEmpty {
            let (session, name, contentID, batch, announced) = (session, name.value, manifest.contentID, newlyHeld, announced)
            newlyHeld = []
            Task {
                await announced.value
                await session.announceHave(name: name, contentID: contentID, indices: batch)
            }
        }
    }
}
