import ArgumentParser
import Foundation
import Logging
import ShoalCore
import ShoalNet
import ShoalPeer

/// `--user`, for commands that log in.
struct UserOptions: ParsableArguments {
    @Option(help: "The account to log in as (password from SHOAL_PASSWORD or a prompt).")
    var user: String
}

/// `--dir` and `--chunk-size`, for commands that share a folder.
struct FolderOptions: ParsableArguments {
    @Option(help: "The folder to share and download into.")
    var dir: String

    @Option(name: .customLong("chunk-size"), help: "Share the folder's files in chunks of this many KiB (16 ... 4096); default: the size rule in PROTOCOL.md.")
    var chunkSizeKiB: UInt32?

    /// The chunk size in bytes, if one was given.
    var chunkSize: UInt32? { chunkSizeKiB.map { $0 * 1024 } }

    func validate() throws {
        if let kib = chunkSizeKiB, !ChunkSizing.allowedChunkSizes.contains(kib * 1024) {
            throw ValidationError("--chunk-size must be between 16 and 4096 (KiB); got \(kib)")
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isFolder), isFolder.boolValue else {
            throw ValidationError("--dir \(dir) is not an existing folder; create it first")
        }
    }
}

/// `--listen` and `--advertise`: where a peer serves chunks, and where
/// downloaders are told to find it; `--compression`; `--max-upload` and
/// `--max-download`: the peer's rate limits.
struct NetworkOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Where to serve chunks: HOST:PORT, [IPv6]:PORT, or PORT on every interface; port 0 picks a free one.",
                               valueName: "address"))
    var listen = "[::]:0"

    @Option(help: ArgumentHelp("The address downloaders should connect to, HOST[:PORT], when it is not the one the tracker sees (port forwarding, NAT).",
                               valueName: "address"))
    var advertise: String?

    func validate() throws {
        do {
            _ = try Endpoint.listening(listen)
        } catch {
            throw ValidationError("--listen \(listen): \(error)")
        }
        if let advertise {
            do {
                _ = try Endpoint.advertised(advertise)
            } catch {
                throw ValidationError("--advertise \(advertise): \(error)")
            }
        }
        for (option, value) in [("--max-upload", maxUpload), ("--max-download", maxDownload)] {
            guard let value else { continue }
            do {
                _ = try TransferRate(parsing: value)
            } catch {
                throw ValidationError("\(option): \(error)")
            }
        }
    }

    @Option(name: .customLong("max-upload"),
            help: ArgumentHelp("The most this peer uploads, over all its connections: e.g. 20MB/s, 100Mbit/s, 512KiB/s (MB = 10^6 bytes, MiB = 2^20; a bare number is bytes/s). No limit by default.",
                               valueName: "rate"))
    var maxUpload: String?

    @Option(name: .customLong("max-download"),
            help: ArgumentHelp("The most this peer downloads, over all its holders: e.g. 20MB/s, 100Mbit/s, 512KiB/s. No limit by default.",
                               valueName: "rate"))
    var maxDownload: String?

    /// The upload limit, if any (validated already).
    var uploadRate: TransferRate? { maxUpload.flatMap { try? TransferRate(parsing: $0) } }
    /// The download limit, if any (validated already).
    var downloadRate: TransferRate? { maxDownload.flatMap { try? TransferRate(parsing: $0) } }

    @Flag(help: "Encrypt peer links: serve chunks over TLS with a key made for this run (its fingerprint goes to the tracker), and download only from holders that do the same. Without it links are in clear (faster: sendfile); chunk hashes protect integrity either way.")
    var encrypt = false

    @Option(help: ArgumentHelp("How chunks come from each holder: auto (compressed over links slower than this machine inflates, stored over faster ones), always compressed, or never.",
                               valueName: "auto|always|never"))
    var compression: CompressionChoice.Mode = .auto

    /// The download settings these options set.
    var downloadConfiguration: Downloader.Configuration {
        var configuration = Downloader.Configuration()
        configuration.compression = compression
        return configuration
    }

    /// The address to listen on (validated already).
    var listenEndpoint: Endpoint { (try? Endpoint.listening(listen)) ?? Endpoint(host: Endpoint.allInterfaces, port: 0) }
    /// The advertised host and port, if any (validated already).
    var advertised: (host: String?, port: Int?) {
        guard let advertise, let parsed = try? Endpoint.advertised(advertise) else { return (nil, nil) }
        return (parsed.host.value, parsed.port)
    }
}

extension CompressionChoice.Mode: ExpressibleByArgument {}

/// Logging for peer commands: warnings and up on stderr, unless asked for
/// more; a trace stamps each line to the microsecond (``TimedLogHandler``).
enum PeerLogging {
    static func bootstrap(level: Logger.Level = .warning) {
        LoggingSystem.bootstrap { label in
            if level == .trace { return TimedLogHandler(label: label, logLevel: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Runs `body`, turning library errors into one clear line and a non-zero exit.
func withClearErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as CLIError {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        throw CLIError("\(error)")
    }
}
