import Foundation
import Logging
import NIOCore
import ShoalCore
import ShoalNet
import ShoalWire

/// Drives one download: asks the tracker for the file's details, reopens or
/// creates the partial file, runs a ``DownloadLoop`` over the holders until
/// every chunk is verified and written, then checks the content id, moves the
/// file into place, reports each holder to the tracker and announces itself
/// as a holder.
///
/// Memory is bounded by the plan's bytes in flight, whatever the file size.
public struct Downloader: Sendable {
    public struct Configuration: Sendable {
        public var plan = DownloadPlan.Configuration()
        /// A chunk request unanswered this long fails its holder, whatever
        /// the plan says: a backstop. The plan's own deadlines, from each
        /// holder's measured round trip and throughput, come much sooner.
        public var requestTimeout: Double = 60
        /// Connecting to a holder and timing its first round trip, at most.
        public var connectTimeout: Double = 5
        /// How often to ask the tracker for new holders and for what partial
        /// holders have now (they announce new chunks every 0.5 s): one small
        /// request, so that downloaders that start together find each other.
        public var refreshInterval: Double = 1
        /// At the start, for this long (seconds) while holders are still
        /// connecting, each connected holder is asked for no more than its
        /// share of the file, so the work is shared from the first chunk.
        public var startGrace: Double = 0.3
        /// How often the loop looks for late requests and silent holders.
        public var tickInterval: Double = 0.02
        /// Whether chunks are asked for compressed, stored, or as each link suits.
        public var compression = CompressionChoice.Mode.auto
        /// How long to wait for holders when none is left before giving up.
        public var patience: Double = 15
        /// Whether the peer goes on serving once the download is done (`shoal
        /// seed`, the menu) rather than exit (`shoal get`). A peer that goes
        /// on prepares the file's chunks for the wire and flushes it to disk
        /// in the background. One that exits does neither: its exit would
        /// wait for the disk (a thread inside fdatasync cannot be stopped),
        /// and the kernel writes the file out anyway.
        public var servesAfterwards = true
        /// The download budget shared by every download of the peer; nil: unlimited.
        public var downloadLimit: RateLimiter?
        /// Download only over TLS, from holders that announce a key
        /// (`--encrypt`); holders in clear are passed over with a warning.
        /// Either way, a holder that announces a key is reached over TLS and
        /// must prove that key.
        public var encryptedOnly = false
        /// Where every holder connection counts the bytes it allocated for
        /// chunk payloads and the unsolicited frames it skipped; nil: each its own.
        public var receiveStatistics: FrameStatistics?
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

    /// Downloads the file shared as `name` into the folder. When several
    /// contents are shared under that name, `content` (a content id, or its
    /// first 8 or more hex digits) says which; without it the download stops
    /// with ``DownloadError/ambiguous(name:choices:more:)``, listing them:
    /// nothing is chosen by counting holders, which free accounts can inflate.
    public func download(name: String, content: String? = nil,
                         progress: @escaping @Sendable (DownloadProgress) -> Void = { _ in }) async throws -> DownloadResult {
        let fileName: FileName
        do { fileName = try FileName(name) } catch { throw DownloadError.invalidName(name, error) }
        var detail: FileDetail
        do {
            let details = try await session.details(name: fileName.value)
            if let content {
                let prefix = content.lowercased()
                guard prefix.count >= 8, prefix.allSatisfy(\.isHexDigit) else { throw DownloadError.badContentID(content) }
                let matches = details.files.filter { $0.contentID.hex.hasPrefix(prefix) }
                guard matches.count <= 1 else { throw DownloadError.ambiguous(name: name, choices: matches, more: nil) }
                if let match = matches.first {
                    detail = match
                } else if prefix.count == 64, let id = ContentID(hex: prefix) {
                    // Beyond the contents listed: ask for it by id.
                    guard let found = try await session.details(contentID: id).first else { throw DownloadError.contentNotFound(name: name, content: content) }
                    detail = found
                } else {
                    throw DownloadError.contentNotFound(name: name, content: content)
                }
            } else {
                guard details.files.count == 1, details.moreContents == nil else {
                    throw DownloadError.ambiguous(name: name, choices: details.files, more: details.moreContents)
                }
                detail = details.files[0]
            }
            if detail.manifest == nil {
                guard let whole = try await session.details(contentID: detail.contentID).first else { throw DownloadError.notFound(name) }
                detail = whole
            }
        } catch NetError.wire(.remote("not_found", _)) {
            throw DownloadError.notFound(name)
        } catch let error as DownloadError {
            throw error
        } catch {
            throw DownloadError.tracker("\(error)")
        }
        logger.trace("details of \(name) received")
        let manifest: Manifest
        guard let payload = detail.manifest else { throw DownloadError.tracker("its details of \(name.debugDescription) carry no manifest") }
        do { manifest = try payload.manifest(expecting: detail.contentID) } catch { throw DownloadError.corrupt("\(error)") }
        return try await download(name: fileName, manifest: manifest, holders: detail.holders, downloadID: detail.downloadID, progress: progress)
    }

    private func download(name: FileName, manifest: Manifest, holders initial: [ShoalWire.Holder], downloadID: String?,
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
        logger.trace("partial file open")
        library.add(partial)
        let partialEntry = AnnouncedFile(name: name.value, contentID: manifest.contentID, manifest: ManifestPayload(manifest),
                                         chunks: partial.have.base64)
        // Announced while the first holders connect, not before: what
        // follows about this content (chunks, the whole file) waits for it.
        let announced = Task { [session, logger] in
            try? await session.announce([partialEntry])
            logger.trace("partial file announced")
        }

        let loop = DownloadLoop(name: name, manifest: manifest, partial: partial, session: session, logger: logger,
                                configuration: configuration, downloadID: downloadID, announced: announced, progress: progress)
        let ending = await loop.run(holders: initial)
        logger.trace("download loop ended: \(ending)")
        let plan = loop.plan
        switch ending {
        case .complete:
            break
        case .cancelled:
            logger.info("download of \(name) stopped with \(plan.have.heldCount) of \(manifest.chunkCount) chunks verified; it resumes from there")
            throw CancellationError()
        case let .storage(error):
            throw DownloadError.storage(error)
        case .gaveUp:
            await reportHolders(plan, loop, manifest)
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
        logger.trace("file verified and in place")
        // Served from here on through a descriptor opened without following a link.
        let reader: FileChunkReader
        do { reader = try folder.openFile(name) } catch { throw DownloadError.storage(error) }
        let entry = SharedFolder.Entry(name: name, manifest: finished, reader: reader)
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
        // The whole file announced and the holders reported at once: the
        // requests share the tracker connection's round trips. The manifest
        // went with the partial file's announce in this session; it is sent
        // again only if the tracker asks for it (a new session since).
        await announced.value
        let (reports, reportID) = holderReports(plan, loop, manifest)
        async let reported: Void = send(reports, downloadID: reportID, contentID: manifest.contentID)
        do {
            try await session.announce([AnnouncedFile(name: name.value, contentID: manifest.contentID)])
        } catch {
            try? await session.announce([AnnouncedFile(name: name.value, contentID: manifest.contentID, manifest: ManifestPayload(manifest))])
        }
        logger.trace("file announced")
        await reported
        logger.trace("holders reported")
        let seconds = (ContinuousClock.now - started).seconds
        progress(loop.snapshot(elapsed: seconds))
        // One row per holder; one that came back after going silent sums its connections, the last one decides the rest.
        var outcomes: [DownloadResult.HolderOutcome] = []
        for (id, holder) in loop.links.sorted(by: { $0.key < $1.key }) {
            let peer = plan.peers[id]
            var row = DownloadResult.HolderOutcome(user: holder.user, host: holder.host, port: holder.port, chunks: peer?.chunksServed ?? 0,
                                                   bytes: UInt64(peer?.bytesServed ?? 0), failed: peer?.dropped,
                                                   score: peer?.score.value(chunkSize: Int(manifest.chunkSize)) ?? 0,
                                                   responseTimeMs: holder.roundTrip * 1000)
            if let earlier = outcomes.firstIndex(where: { $0.user == holder.user }) {
                row.chunks += outcomes[earlier].chunks
                row.bytes += outcomes[earlier].bytes
                outcomes.remove(at: earlier)
            }
            outcomes.append(row)
        }
        return DownloadResult(name: name.value, path: destination, contentID: manifest.contentID.hex, size: manifest.fileSize,
                              sha256: nil, resumedChunks: resumed, fetchedChunks: loop.fetchedChunks, fetchedBytes: loop.fetchedBytes,
                              wireBytes: loop.wireBytes, seconds: seconds, peakMemoryKiB: nil, holders: outcomes)
    }

    /// What to report of each holder, once, with the download's id: a
    /// failure if it sent bad data or refused a chunk it announced (it is
    /// banned from the download), else a success if it served verified
    /// chunks. A holder that could not be reached or went silent is not
    /// reported: that may be the network's fault, or ours, and the tracker
    /// cannot tell. A holder met on several connections (it went silent and
    /// came back) is one holder, with the bytes of all of them.
    private func holderReports(_ plan: DownloadPlan, _ loop: DownloadLoop, _ manifest: Manifest)
        -> (reports: [(user: String, succeeded: Bool, bytes: UInt64)], downloadID: String?) {
        var served: [String: (bytes: Int, chunks: Int)] = [:]
        for (id, link) in loop.links {
            guard let peer = plan.peers[id] else { continue }
            let before = served[link.user] ?? (0, 0)
            served[link.user] = (before.bytes + peer.bytesServed, before.chunks + peer.chunksServed)
        }
        var reports: [(user: String, succeeded: Bool, bytes: UInt64)] = []
        for user in Set(served.keys).union(loop.banned).sorted() {
            let bad = loop.banned.contains(user)
            let result = served[user] ?? (0, 0)
            guard bad || result.chunks > 0 else { continue }
            reports.append((user, !bad, min(UInt64(result.bytes), manifest.fileSize)))
        }
        return (reports, loop.downloadID)
    }

    /// Sends the reports together, so they share the tracker connection's
    /// round trips (answered in turn), and waits for every answer.
    private func send(_ reports: [(user: String, succeeded: Bool, bytes: UInt64)], downloadID: String?, contentID: ContentID) async {
        await withTaskGroup(of: Void.self) { group in
            for report in reports {
                group.addTask { [session] in
                    _ = await session.report(contentID: contentID, holder: report.user, succeeded: report.succeeded, bytes: report.bytes,
                                             downloadID: downloadID)
                }
            }
        }
    }

    private func reportHolders(_ plan: DownloadPlan, _ loop: DownloadLoop, _ manifest: Manifest) async {
        let (reports, downloadID) = holderReports(plan, loop, manifest)
        await send(reports, downloadID: downloadID, contentID: manifest.contentID)
    }
}
