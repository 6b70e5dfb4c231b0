import Foundation
import Logging
import NIOCore
import ShoalCore
import ShoalNet
import ShoalWire

/// Drives one download: asks the tracker for the file's details, connects to
/// its holders and times them, then runs a ``DownloadPlan``: it performs the
/// requests the plan returns (pipelined, one connection per holder), verifies
/// each chunk (bounded inflate, SHA-256) and writes it into the
/// ``PartialDownload`` in child tasks, so both cores verify and write while
/// the network keeps delivering, and feeds every outcome back to the plan.
/// At the end it checks the content id, moves the file into place, reports
/// each holder to the tracker and announces itself as a holder.
///
/// Memory is bounded by the plan's bytes in flight, whatever the file size.
public struct Downloader: Sendable {
    public struct Configuration: Sendable {
        public var plan = DownloadPlan.Configuration()
        /// A chunk request unanswered this long fails its holder.
        public var requestTimeout: Double = 10
        /// How often to ask the tracker for new holders and for what partial
        /// holders have now (they announce new chunks every 0.5 s): one small
        /// request, so that downloaders that start together find each other.
        public var refreshInterval: Double = 1
        /// How long to wait for holders when none is left before giving up.
        public var patience: Double = 15
        /// Whether the peer goes on serving once the download is done (`shoal
        /// seed`, the menu) rather than exit (`shoal get`). A peer that goes
        /// on prepares the file's chunks for the wire and flushes it to disk
        /// in the background. One that exits does neither: its exit would
        /// wait for the disk (a thread inside fdatasync cannot be stopped),
        /// and the kernel writes the file out anyway.
        public var servesAfterwards = true
        public init() {}
    }

    let folder: SharedFolder
    let library: ChunkLibrary
    let session: TrackerSession
    let logger: Logger
    let configuration: Configuration

    public init(folder: SharedFolder, library: ChunkLibrary, session: TrackerSession, logger: Logger, configuration: Configuration = Configuration()) {
        self.folder = folder
        self.library = library
        self.session = session
        self.logger = logger
        self.configuration = configuration
    }

    private enum Event: Sendable {
        case received(peer: Int, chunk: Int, wireBytes: Int)
        case failed(peer: Int, chunk: Int, DownloadPlan.Failure)
        case storage(StorageError)
        case tick
    }

    private struct Holder: Sendable {
        var user: String
        var host: String
        var port: Int
        var connection: FramedConnection
        var roundTrip: Double
    }

    /// Downloads the file shared as `name` into the folder.
    public func download(name: String, progress: @escaping @Sendable (DownloadProgress) -> Void = { _ in }) async throws -> DownloadResult {
        let fileName: FileName
        do { fileName = try FileName(name) } catch { throw DownloadError.invalidName(name, error) }
        let details: [FileDetail]
        do {
            details = try await session.details(name: fileName.value)
        } catch NetError.wire(.remote("not_found", _)) {
            throw DownloadError.notFound(name)
        } catch {
            throw DownloadError.tracker("\(error)")
        }
        guard let detail = details.first else { throw DownloadError.notFound(name) }
        let manifest: Manifest
        do { manifest = try detail.manifest.manifest(expecting: detail.contentID) } catch { throw DownloadError.corrupt("\(error)") }
        return try await download(name: fileName, manifest: manifest, holders: detail.holders, progress: progress)
    }

    private func download(name: FileName, manifest: Manifest, holders initial: [ShoalWire.Holder],
                          progress: @escaping @Sendable (DownloadProgress) -> Void) async throws -> DownloadResult {
        let started = ContinuousClock.now
        let destination = folder.file(name)
        let partial: PartialDownload
        do {
            // Reopening verifies the chunks already on disk: blocking work.
            partial = try await BlockingWork.run { [folder] in try PartialDownload(folder: folder, manifest: manifest, name: name.value) }
        } catch let error as StorageError {
            throw DownloadError.storage(error)
        }
        let resumed = partial.have.heldCount
        if resumed > 0 { logger.info("resuming \(name): \(resumed) of \(manifest.chunkCount) chunks already verified on disk") }
        library.add(partial)
        let partialEntry = AnnouncedFile(name: name.value, contentID: manifest.contentID, manifest: ManifestPayload(manifest),
                                         chunks: Data(partial.have.bytes).base64EncodedString())
        try? await session.announce([partialEntry])

        var plan = DownloadPlan(manifest: manifest, have: partial.have, configuration: configuration.plan)
        var holders: [Int: Holder] = [:]
        var nextID = 0
        var knownUsers = Set<String>()
        var unreachable: [ShoalWire.Holder] = []

        // Connects to new holders and adds them to the plan.
        func admit(_ candidates: [ShoalWire.Holder]) async {
            let fresh = candidates.filter { !knownUsers.contains($0.user) && $0.user != session.user }
            let connected = await withTaskGroup(of: (ShoalWire.Holder, FramedConnection?, Double).self) { group in
                for holder in fresh {
                    group.addTask {
                        let start = ContinuousClock.now
                        // Chunk replies: allocated whole when their header comes (they were asked for, and are bounded).
                        let chunkFrame = Int(manifest.chunkSize) + 4096
                        guard let connection = try? await FramedConnection.connect(host: holder.host, port: holder.port, role: "peer",
                                                                                   timeout: .seconds(5), maximumPayloadLength: chunkFrame,
                                                                                   preallocationLimit: chunkFrame) else {
                            return (holder, nil, 0)
                        }
                        // Time a CheckActive round trip: the response time of the original.
                        let probe = ContinuousClock.now
                        let rtt: Double
                        if (try? await connection.request(.checkActive(CheckActive(nonce: 1)), timeout: .seconds(5))) != nil {
                            rtt = (ContinuousClock.now - probe).seconds
                        } else {
                            rtt = (ContinuousClock.now - start).seconds
                        }
                        return (holder, connection, rtt)
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            for (holder, connection, rtt) in connected {
                knownUsers.insert(holder.user)
                guard let connection else {
                    logger.notice("holder \(holder.user) at \(holder.host):\(holder.port) cannot be reached")
                    unreachable.append(holder)
                    continue
                }
                let id = nextID
                nextID += 1
                holders[id] = Holder(user: holder.user, host: holder.host, port: holder.port, connection: connection, roundTrip: rtt)
                let available = holder.chunks.flatMap { Data(base64Encoded: $0) }.flatMap { ChunkMap(count: manifest.chunkCount, bytes: $0) }
                plan.addPeer(id: id, name: holder.user,
                             score: PeerScore(responseTime: rtt, countDownloads: holder.countDownloads, countFailures: holder.countFailures),
                             available: available)
            }
        }

        // Refreshes the chunk maps of partial holders we know.
        func refresh(_ candidates: [ShoalWire.Holder]) {
            for candidate in candidates {
                guard let (id, _) = holders.first(where: { $0.value.user == candidate.user }), plan.peers[id]?.isActive == true else { continue }
                let available = candidate.chunks.flatMap { Data(base64Encoded: $0) }.flatMap { ChunkMap(count: manifest.chunkCount, bytes: $0) }
                plan.addPeer(id: id, name: candidate.user, score: plan.peers[id]!.score, available: available)
            }
        }

        await admit(initial)
        let clock = ContinuousClock()
        let epoch = clock.now
        func now() -> Double { (clock.now - epoch).seconds }

        var fetchedBytes: UInt64 = 0
        var wireBytes: UInt64 = 0
        var fetchedChunks = 0
        var newlyHeld: [Int] = []
        var lastRefresh = 0.0
        var lastProgress = 0.0
        var lastProgressChunks = 0
        var lastAnnounce = 0.0
        var waitingSince: Double?
        var storageFailure: StorageError?
        let requestTimeout = TimeAmount.nanoseconds(Int64(configuration.requestTimeout * 1e9))

        if !plan.isComplete {
            await withTaskGroup(of: Event.self) { group in
                group.addTask { await Self.tick() }
                var running = 1
                while !plan.isComplete && storageFailure == nil && !Task.isCancelled {
                    for request in plan.nextRequests(now: now()) {
                        guard let holder = holders[request.peer] else { continue }
                        running += 1
                        group.addTask {
                            await Self.fetch(chunk: request.chunk, from: request.peer, connection: holder.connection, manifest: manifest,
                                             partial: partial, timeout: requestTimeout)
                        }
                    }
                    guard let event = await group.next() else { break }
                    running -= 1
                    switch event {
                    case let .received(peer, chunk, frameBytes):
                        wireBytes += UInt64(frameBytes)
                        if plan.received(peer: peer, chunk: chunk, now: now()) == .accepted {
                            fetchedChunks += 1
                            fetchedBytes += UInt64(manifest.length(ofChunk: chunk))
                            newlyHeld.append(chunk)
                            // Progress every 1 % of the chunks or 50 ms, whichever comes
                            // first: a snapshot walks the whole chunk map.
                            let t = now()
                            if t - lastProgress >= 0.05 || (fetchedChunks - lastProgressChunks) * 100 >= manifest.chunkCount {
                                lastProgress = t
                                lastProgressChunks = fetchedChunks
                                progress(snapshot(name, manifest, plan, fetchedBytes, t, holders))
                            }
                        }
                    case let .failed(peer, chunk, failure):
                        let wasActive = plan.peers[peer]?.isActive == true
                        if plan.failed(peer: peer, chunk: chunk, failure), wasActive, let holder = holders[peer] {
                            logger.notice("dropping holder \(holder.user) for this download: \(plan.peers[peer]?.dropped ?? "failed")")
                            holder.connection.close()
                        }
                    case let .storage(error):
                        storageFailure = error
                    case .tick:
                        running += 1
                        group.addTask { await Self.tick() }
                        let t = now()
                        if !newlyHeld.isEmpty && t - lastAnnounce >= 0.5 {
                            let batch = newlyHeld
                            newlyHeld = []
                            lastAnnounce = t
                            let session = self.session
                            Task { await session.announceHave(name: name.value, contentID: manifest.contentID, indices: batch) }
                        }
                        let stuck = plan.activePeers.isEmpty || !plan.unobtainable.isEmpty
                        if stuck || t - lastRefresh >= configuration.refreshInterval {
                            lastRefresh = t
                            if let fresh = try? await session.details(contentID: manifest.contentID).first?.holders {
                                refresh(fresh)
                                await admit(fresh)
                            }
                        }
                        if plan.activePeers.isEmpty || !plan.unobtainable.isEmpty && plan.inFlightCount == 0 {
                            waitingSince = waitingSince ?? t
                            if t - waitingSince! > configuration.patience { group.cancelAll(); break }
                        } else {
                            waitingSince = nil
                        }
                    }
                }
                group.cancelAll()
                _ = running
            }
        }
        for holder in holders.values { holder.connection.close() }
        if Task.isCancelled && !plan.isComplete {
            logger.info("download of \(name) stopped with \(plan.have.heldCount) of \(manifest.chunkCount) chunks verified; it resumes from there")
            throw CancellationError()
        }
        if let storageFailure {
            throw DownloadError.storage(storageFailure)
        }
        guard plan.isComplete else {
            await reportHolders(plan, holders, unreachable, manifest)
            throw DownloadError.holdersGone(name: name.value, missing: plan.missingCount)
        }

        // Whole file: check it, put it in place, share it, report. Where a
        // restart of the machine can be told afterwards, the file reaches the
        // disk in the background instead of before the download is done.
        let boot = BootID.current
        let finished: Manifest
        do {
            finished = try await BlockingWork.run { try partial.finish(as: destination, flush: boot == nil) }
        } catch let error as StorageError {
            throw DownloadError.storage(error)
        } catch {
            partial.discard()
            library.remove(manifest.contentID)
            throw DownloadError.corrupt("\(error)")
        }
        library.remove(manifest.contentID)
        let entry = SharedFolder.Entry(name: name, manifest: finished, path: destination)
        try? library.addDownloaded(entry, prepare: configuration.servesAfterwards)
        folder.remember(entry, unflushedIn: boot)
        if boot != nil && configuration.servesAfterwards {
            Task.detached { [folder, logger] in
                do {
                    try await BlockingWork.run { try folder.flush(entry) }
                } catch {
                    logger.warning("\(name) is downloaded but could not be flushed to disk: \(error)")
                }
            }
        }
        try? await session.announce([AnnouncedFile(name: name.value, contentID: manifest.contentID, manifest: ManifestPayload(manifest))])
        await reportHolders(plan, holders, unreachable, manifest)
        let seconds = (ContinuousClock.now - started).seconds
        progress(snapshot(name, manifest, plan, fetchedBytes, seconds, holders))
        let outcomes = holders.sorted { $0.key < $1.key }.map { id, holder in
            let peer = plan.peers[id]
            return DownloadResult.HolderOutcome(user: holder.user, host: holder.host, port: holder.port, chunks: peer?.chunksServed ?? 0,
                                                bytes: UInt64(peer?.bytesServed ?? 0), failed: peer?.dropped,
                                                score: peer?.score.value(chunkSize: Int(manifest.chunkSize)) ?? 0,
                                                responseTimeMs: holder.roundTrip * 1000)
        }
        return DownloadResult(name: name.value, path: destination, contentID: manifest.contentID.hex, size: manifest.fileSize,
                              sha256: nil, resumedChunks: resumed, fetchedChunks: fetchedChunks, fetchedBytes: fetchedBytes,
                              wireBytes: wireBytes, seconds: seconds, peakMemoryKiB: nil, holders: outcomes)
    }

    /// Reports every holder that served or failed: success if it delivered verified chunks, failure if it was dropped.
    private func reportHolders(_ plan: DownloadPlan, _ holders: [Int: Holder], _ unreachable: [ShoalWire.Holder], _ manifest: Manifest) async {
        for (id, holder) in holders {
            guard let peer = plan.peers[id] else { continue }
            if peer.dropped != nil {
                await session.report(contentID: manifest.contentID, holder: holder.user, succeeded: false, bytes: UInt64(peer.bytesServed))
            } else if peer.chunksServed > 0 {
                await session.report(contentID: manifest.contentID, holder: holder.user, succeeded: true, bytes: UInt64(peer.bytesServed))
            }
        }
        for holder in unreachable {
            await session.report(contentID: manifest.contentID, holder: holder.user, succeeded: false, bytes: 0)
        }
    }

    private func snapshot(_ name: FileName, _ manifest: Manifest, _ plan: DownloadPlan, _ fetched: UInt64, _ elapsed: Double, _ holders: [Int: Holder]) -> DownloadProgress {
        var byHolder: [String: Int] = [:]
        for (id, peer) in plan.peers { byHolder[holders[id]?.user ?? peer.name] = peer.chunksServed }
        let done = plan.have.indices.reduce(UInt64(0)) { $0 + UInt64(manifest.length(ofChunk: $1)) }
        return DownloadProgress(name: name.value, totalBytes: manifest.fileSize, doneBytes: done, fetchedBytes: fetched, elapsed: elapsed,
                                chunksByHolder: byHolder, holdersInUse: plan.activePeers.count)
    }

    private static func tick() async -> Event {
        try? await Task.sleep(for: .milliseconds(250))
        return .tick
    }

    /// One chunk: request, verify, write. Runs in a child task.
    private static func fetch(chunk index: Int, from peer: Int, connection: FramedConnection, manifest: Manifest,
                              partial: PartialDownload, timeout: TimeAmount) async -> Event {
        let reply: Frame
        do {
            reply = try await connection.requestFrame(timeout: timeout) { id in
                ChunkRequest(contentID: manifest.contentID, index: UInt32(index)).frame(requestID: id)
            }
        } catch let NetError.wire(error) {
            return .failed(peer: peer, chunk: index, .badData(error.description))
        } catch {
            return .failed(peer: peer, chunk: index, .unresponsive("\(error)"))
        }
        if reply.type == .error {
            let refusal = try? ErrorReply(frame: reply)
            if refusal?.code == .unavailable { return .failed(peer: peer, chunk: index, .unavailable) }
            return .failed(peer: peer, chunk: index, .badData("refused chunk \(index): \(refusal?.message ?? "error")"))
        }
        do {
            let data = try ChunkData(frame: reply)
            guard data.contentID == manifest.contentID, Int(data.index) == index else {
                throw WireError.unexpectedChunk(expected: "chunk \(index) of \(manifest.contentID.short)", received: "chunk \(data.index) of \(data.contentID.short)")
            }
            var borrowed: VerifyScratch?
            defer { if let borrowed { VerifyScratch.give(borrowed) } }
            let written: StorageError? = try data.withVerifiedBytes(against: manifest, scratch: {
                let scratch = VerifyScratch.take(size: Int(manifest.chunkSize))
                borrowed = scratch
                return (scratch.buffer, scratch.inflater)
            }) { bytes -> StorageError? in
                do throws(StorageError) {
                    try partial.write(chunk: index, bytes: bytes)
                    return nil
                } catch {
                    return error
                }
            }
            if let written { return .storage(written) }
            return .received(peer: peer, chunk: index, wireBytes: FrameHeader.size + reply.payload.readableBytes)
        } catch {
            return .failed(peer: peer, chunk: index, .badData("\(error)"))
        }
    }
}

