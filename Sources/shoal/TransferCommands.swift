import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import ShoalCore
import ShoalNet
import ShoalPeer
import Synchronization

/// `shoal seed --user U --dir DIR [--listen ADDRESS] [--advertise ADDRESS] [--max-upload RATE]`: share a folder until SIGINT/SIGTERM.
struct SeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed", abstract: "Log in, share a folder and serve it until SIGINT or SIGTERM, then log out.",
        discussion: """
            The first line on stdout is `serving on HOST:PORT`. On SIGTERM or SIGINT it logs out (downloaders stop \
            picking it), accepts no new connections, finishes the chunks already asked for (at most --drain-seconds), \
            and exits 0.
            """)

    @OptionGroup var tracker: TrackerOptions
    @OptionGroup var account: UserOptions
    @OptionGroup var folder: FolderOptions
    @OptionGroup var network: NetworkOptions
    @OptionGroup var shutdown: ShutdownOptions
    @Option(help: "Log level on stderr.") var logLevel: Logger.Level = .notice

    func run() async throws {
        let peer = try await startPeer(tracker: tracker, account: account, folder: folder, network: network, logLevel: logLevel, label: "shoal.seed")
        let shared = peer.library.announcement().count
        Output.error("\(account.user) shares \(shared) file\(shared == 1 ? "" : "s") from \(peer.folder.path); stop with Ctrl-C")
        if let rate = network.uploadRate { Output.error("uploads limited to \(rate) over all connections") }
        // The session logs out first, then the server drains (the group stops services in reverse order).
        let group = shutdown.group(peer.services.map { .init(service: $0) },
                                   ready: ["serving on \(Endpoint(host: peer.server.host, port: peer.server.port))"], logger: Logger(label: "shoal.seed"))
        do {
            try await group.run()
        } catch {
            throw CLIError("stopping failed: \(error)")
        }
        let served = peer.library.served
        Output.error("served \(served.chunks) chunks (\(Output.bytes(served.rawBytes)), \(Output.bytes(served.wireBytes)) on the wire); logged out")
    }
}

/// `shoal get NAME --user U --dir DIR [--json]`.
struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Log in, download a file into a folder (serving it meanwhile), log out.",
        discussion: """
            Exits 0 only when the verified file is in the folder. Progress goes to stderr. On SIGTERM or SIGINT \
            it stops, keeps the chunks verified so far under DIR/.shoal/partial, logs out and exits \(GetCommand.stoppedExitCode): \
            the same command resumes the download.
            """)

    /// The exit status of a download stopped by SIGTERM or SIGINT, its state kept to resume (EX_TEMPFAIL: try again).
    static let stoppedExitCode: Int32 = 75

    @Argument(help: "The name of the file to download.") var name: String
    @Option(help: "When several files are shared under the name: the content id (or its first 8+ hex digits) of the one to download.")
    var content: String?
    @OptionGroup var tracker: TrackerOptions
    @OptionGroup var account: UserOptions
    @OptionGroup var folder: FolderOptions
    @OptionGroup var network: NetworkOptions
    @Flag(help: "Print one JSON document with the result (see README).") var json = false
    @Flag(help: "Also compute the SHA-256 of the whole file (one more pass over it) and print it.") var sha256 = false
    @OptionGroup var shutdown: ShutdownOptions
    @Option(help: "Log level on stderr.") var logLevel: Logger.Level = .warning

    func run() async throws {
        // This peer exits once the file is in: no background work after it.
        var afterwards = Downloader.Configuration()
        afterwards.servesAfterwards = false
        let peer = try await startPeer(tracker: tracker, account: account, folder: folder, network: network, logLevel: logLevel, label: "shoal.get",
                                       downloadConfiguration: afterwards)
        peer.logger.trace("peer started")
        let line = ProgressLine()
        let download = DownloadService(peer: peer, name: name, content: content) { line.update($0) }
        // The download ends the group however it ends; then the session logs out and the server drains.
        let group = shutdown.group([
            .init(service: peer.server), .init(service: peer.session),
            .init(service: download, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
        ], logger: Logger(label: "shoal.get"))
        do {
            try await group.run()
        } catch {
            throw CLIError("stopping failed: \(error)")
        }
        peer.logger.trace("logged out, server stopped")
        guard let outcome = download.outcome else { throw CLIError("the download did not run") }
        switch outcome {
        case .failure where download.stopped:
            Output.error("")
            Output.error("stopped: the chunks verified so far are kept in \(peer.folder.path)/.shoal/partial; run the same command again to resume")
            throw ExitCode(Self.stoppedExitCode)
        case .failure(let error):
            throw CLIError("\(error)")
        case .success(var result):
            if sha256 { result.sha256 = FileDigest.sha256(path: result.path) }
            result.peakMemoryKiB = PeakMemory.kibibytes
            if json {
                try Output.json(result)
            } else {
                Output.line("downloaded \(result.name) (\(Output.bytes(result.size))) to \(result.path)")
                Output.line("  content id \(result.contentID)" + (result.sha256.map { ", SHA-256 \($0)" } ?? ""))
                Output.line(String(format: "  %.1f MB/s over %.2f s from %d peer%@; %d chunks fetched, %d resumed",
                                   result.megabytesPerSecond, result.seconds, result.holders.count, result.holders.count == 1 ? "" : "s",
                                   result.fetchedChunks, result.resumedChunks))
                for holder in result.holders {
                    Output.line("  \(holder.user): \(holder.chunks) chunks\(holder.failed.map { " (dropped: \($0))" } ?? "")")
                }
            }
        }
    }
}

/// One download as a service: it runs until the file is in or the download
/// fails, or until a graceful shutdown (SIGTERM, SIGINT) cancels it, which
/// leaves its verified chunks on disk to resume from.
final class DownloadService: Service, Sendable {
    private let peer: Peer
    private let name: String
    private let content: String?
    private let progress: @Sendable (DownloadProgress) -> Void
    private let state = Mutex<(outcome: Result<DownloadResult, any Error>?, stopped: Bool)>((nil, false))

    init(peer: Peer, name: String, content: String?, progress: @escaping @Sendable (DownloadProgress) -> Void) {
        self.peer = peer
        self.name = name
        self.content = content
        self.progress = progress
    }

    /// How the download ended; nil before.
    var outcome: Result<DownloadResult, any Error>? { state.withLock { $0.outcome } }
    /// Whether a graceful shutdown stopped it.
    var stopped: Bool { state.withLock { $0.stopped } }

    func run() async {
        let outcome: Result<DownloadResult, any Error>
        do {
            outcome = .success(try await withGracefulShutdownHandler {
                try await cancelWhenGracefulShutdown { try await self.peer.download(name: self.name, content: self.content, progress: self.progress) }
            } onGracefulShutdown: {
                self.state.withLock { $0.stopped = true }
            })
        } catch {
            outcome = .failure(error)
        }
        state.withLock { $0.outcome = outcome }
    }
}

/// SHA-256 of a whole file, streamed.
enum FileDigest {
    static func sha256(path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        var hasher = ShoalCore.StreamingSHA256()
        while let data = try? handle.read(upToCount: 4 << 20), !data.isEmpty { hasher.update(data) }
        return hasher.finalize()
    }
}

/// This process's peak resident memory.
enum PeakMemory {
    static var kibibytes: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss
    }
}

/// Logging, the password, then a running peer sharing the folder: what `seed` and `get` start with.
func startPeer(tracker: TrackerOptions, account: UserOptions, folder: FolderOptions, network: NetworkOptions, logLevel: Logger.Level, label: String,
               downloadConfiguration: Downloader.Configuration = Downloader.Configuration()) async throws -> Peer {
    PeerLogging.bootstrap(level: logLevel)
    let password = try PasswordInput.read()
    var downloadConfiguration = downloadConfiguration
    downloadConfiguration.compression = network.compression
    return try await withClearErrors {
        try await Peer.start(directory: folder.dir, tracker: tracker.tracker, trust: tracker.trust, user: account.user, password: password,
                             encrypt: network.encrypt,
                             listen: network.listenEndpoint, advertiseHost: network.advertised.host, advertisePort: network.advertised.port,
                             chunkSize: folder.chunkSize, maxUpload: network.uploadRate, maxDownload: network.downloadRate,
                             downloadConfiguration: downloadConfiguration, logger: Logger(label: label)) { name in Output.error("hashing \(name) ...") }
    }
}
