import Foundation
import Logging
import ServiceLifecycle
import ShoalCore
import ShoalNet
import ShoalWire

/// A running peer: its folder, the server that shares it, and its session
/// with the tracker. Starting one scans the folder (hashing new files),
/// serves it, logs in and announces it; ``download(name:progress:)`` fetches
/// a file into the folder; ``stop()`` logs out and stops serving.
public final class Peer: Sendable {
    public let folder: SharedFolder
    public let library: ChunkLibrary
    public let server: PeerServer
    public let session: TrackerSession
    public let logger: Logger
    public let downloadConfiguration: Downloader.Configuration

    private init(folder: SharedFolder, library: ChunkLibrary, server: PeerServer, session: TrackerSession, logger: Logger, downloadConfiguration: Downloader.Configuration) {
        self.folder = folder
        self.library = library
        self.server = server
        self.session = session
        self.logger = logger
        self.downloadConfiguration = downloadConfiguration
    }

    /// Scans `directory`, starts serving it on `listen` (port 0: any free
    /// port; host `::`: every interface), logs in to the tracker and announces
    /// the folder.
    ///
    /// - Parameters:
    ///   - advertiseHost: the address downloaders should connect to, when the
    ///     tracker cannot see it (a peer behind port forwarding); nil: the
    ///     source address of the tracker connection.
    ///   - advertisePort: the port downloaders should connect to; nil: the one listened on.
    ///   - chunkSize: the chunk size the folder's files are shared with; nil: the size rule.
    ///   - maxUpload: the most this peer uploads, over all its connections; nil: no limit.
    ///   - maxDownload: the most this peer downloads, over all its downloads and holders; nil: no limit.
    ///   - trust: how the tracker's certificate is trusted (or `insecure`).
    ///   - encrypt: serve chunks over TLS with a certificate made for this run
    ///     (its fingerprint announced at login), and download only from
    ///     holders that do the same.
    public static func start(
        directory: String, tracker: TrackerAddresses, trust: TrackerTrust, user: String, password: String, encrypt: Bool = false,
        listen: Endpoint = Endpoint(host: Endpoint.allInterfaces, port: 0),
        advertiseHost: String? = nil, advertisePort: Int? = nil, chunkSize: UInt32? = nil,
        compression: CompressionPolicy = CompressionPolicy(),
        maxUpload: TransferRate? = nil, maxDownload: TransferRate? = nil,
        downloadConfiguration: Downloader.Configuration = Downloader.Configuration(),
        logger: Logger, hashing: (@Sendable (String) -> Void)? = nil
    ) async throws -> Peer {
        let folder = try SharedFolder(path: directory, chunkSize: chunkSize)
        let library = ChunkLibrary(cacheDirectory: folder.stateDirectory + "/cache", compression: compression)
        // A key of its own for each run: nothing to keep secret on disk, and the tracker hands out the new fingerprint at each login.
        let identity = encrypt ? try TLSIdentity.generate(commonName: "shoal peer \(user)") : nil
        let server = try await PeerServer.start(host: listen.host, port: listen.port, library: library, compression: compression,
                                                uploadLimit: maxUpload.map { RateLimiter(rate: $0, burst: RateLimiter.uploadBurst) },
                                                identity: identity, logger: logger)
        logger.trace("serving on port \(server.port)")
        var downloadConfiguration = downloadConfiguration.limited(to: maxDownload)
        if encrypt { downloadConfiguration.encryptedOnly = true }
        let session: TrackerSession
        do {
            // Log in first: a wrong password should not cost hashing the folder.
            session = try await TrackerSession.login(trackers: tracker, trust: trust, user: user, password: password, servePort: advertisePort ?? server.port,
                                                    serveHost: advertiseHost, keyFingerprint: identity?.fingerprint, logger: logger)
        } catch {
            await server.stop()
            throw error
        }
        do {
            // Hash new files and prepare their chunks for the wire: a seeder's one-time setup.
            try await BlockingWork.run {
                for entry in try folder.scan(progress: hashing, notice: { logger.warning("\($0)") }) { try library.add(entry) }
            }
        } catch {
            await session.logout()
            await server.stop()
            throw error
        }
        logger.trace("folder scanned")
        let peer = Peer(folder: folder, library: library, server: server, session: session, logger: logger, downloadConfiguration: downloadConfiguration)
        try await session.setAnnouncement { [folder, library, logger] in
            (try? await BlockingWork.run { Self.announcement(folder: folder, library: library, logger: logger) }) ?? library.announcement()
        }
        logger.trace("folder announced")
        return peer
    }

    /// Everything this peer shares, as a full announce: the folder's files
    /// (rescanned) and the verified chunks of downloads in progress.
    static func announcement(folder: SharedFolder, library: ChunkLibrary, logger: Logger) -> [AnnouncedFile] {
        if let entries = try? folder.scan(notice: { logger.warning("\($0)") }) { try? library.replaceFiles(with: entries) }
        return library.announcement()
    }

    /// Downloads `name` into the folder (the content whose id starts with
    /// `content`, when several share the name).
    public func download(name: String, content: String? = nil, progress: @escaping @Sendable (DownloadProgress) -> Void = { _ in }) async throws -> DownloadResult {
        try await Downloader(folder: folder, library: library, session: session, logger: logger, configuration: downloadConfiguration)
            .download(name: name, content: content, progress: progress)
    }

    /// Rescans the folder and announces it again.
    public func reannounce() async throws {
        try await session.announceAll()
    }

    /// The peer's services, for a `ServiceGroup`, in the order they start.
    /// A group shuts its services down in the reverse order: first the
    /// session logs out (the tracker stops listing this peer), then the
    /// server drains (see ``PeerServer/drain(deadline:)``).
    public var services: [any Service] { [server, session] }

    /// Logs out and stops serving at once.
    public func stop() async {
        await session.logout()
        await server.stop()
    }
}
