import ArgumentParser
import Foundation
import Logging
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalSamples
import ShoalTracker

/// `shoal demo`: a whole swarm on loopback, in one command, on a fresh machine.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a tracker, three seeders and a downloader on 127.0.0.1 and show a parallel download.")

    @Option(name: .customLong("size-mib"), help: "Size of the generated file in MiB (half log-like text, half random).")
    var sizeMiB = 256

    @Flag(help: "Keep the temporary folder (tracker database, peer folders) instead of removing it.")
    var keep = false

    func validate() throws {
        guard (1...65_536).contains(sizeMiB) else { throw ValidationError("--size-mib must be 1 ... 65536") }
    }

    func run() async throws {
        PeerLogging.bootstrap(level: .error)
        let logger = Logger(label: "shoal.demo")
        let root = NSTemporaryDirectory() + "shoal-demo-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer {
            if keep { Output.line("Kept \(root)") } else { try? FileManager.default.removeItem(atPath: root) }
        }
        Output.line("Shoal demo: a tracker, three seeders and one downloader, all on 127.0.0.1.")
        Output.line("")

        // The file: half log-like text (compresses to about a fifth), half random bytes (does not).
        let size = sizeMiB << 20
        let original = root + "/sample.bin"
        let generated = ContinuousClock.now
        try SampleData.writeMixed(path: original, size: size)
        Output.line(String(format: "Generated sample.bin: %d MiB, half log-like text, half random bytes (%.1f s).", sizeMiB, (ContinuousClock.now - generated).seconds))

        var configuration = TrackerConfiguration(host: "127.0.0.1", port: 0, databasePath: root + "/tracker.sqlite")
        configuration.passwordRounds = PasswordHasher.defaultRounds
        // TLS with a certificate made for the demo, pinned by every peer.
        let identity = try TLSIdentity.generate(commonName: "shoal demo tracker")
        configuration.transport = .identity(identity)
        let trust = TrackerTrust.pinned(identity.fingerprint)
        let tracker = try await TrackerServer.start(configuration: configuration, logger: logger)
        let trackerTask = Task { await tracker.run() }
        let endpoint = Endpoint(host: "127.0.0.1", port: tracker.port)
        Output.line("Tracker listening on \(endpoint) (temporary database).")
        // The demo is one machine: every peer serves on loopback only.
        let loopback = Endpoint(host: "127.0.0.1", port: 0)

        var seeders: [Peer] = []
        for i in 1...3 {
            let user = "seeder\(i)"
            let folder = root + "/" + user
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            // A hard link: three seeders of the same bytes without three copies on disk.
            if link(original, folder + "/sample.bin") != 0 { try FileManager.default.copyItem(atPath: original, toPath: folder + "/sample.bin") }
            try await TrackerSession.register(endpoint: endpoint, trust: trust, user: user, password: "demo-\(user)")
            let started = ContinuousClock.now
            let peer = try await Peer.start(directory: folder, tracker: TrackerAddresses(endpoint), trust: trust, user: user, password: "demo-\(user)", listen: loopback, logger: logger)
            seeders.append(peer)
            Output.line(String(format: "%@ serving on 127.0.0.1:%d, sharing sample.bin (hashed and announced in %.2f s).",
                               user, peer.server.port, (ContinuousClock.now - started).seconds))
        }
        let downloaderFolder = root + "/downloader"
        try FileManager.default.createDirectory(atPath: downloaderFolder, withIntermediateDirectories: true)
        try await TrackerSession.register(endpoint: endpoint, trust: trust, user: "downloader", password: "demo-downloader")
        let downloader = try await Peer.start(directory: downloaderFolder, tracker: TrackerAddresses(endpoint), trust: trust, user: "downloader", password: "demo-downloader",
                                              listen: loopback, logger: logger)
        Output.line("downloader serving on 127.0.0.1:\(downloader.server.port), fetching sample.bin from the three seeders:")
        Output.line("")

        let line = ProgressLine(interval: 0.25)
        let result: DownloadResult
        do {
            result = try await downloader.download(name: "sample.bin") { line.update($0) }
        } catch {
            throw CLIError("the demo download failed: \(error)")
        }
        line.update(DownloadProgress(name: result.name, totalBytes: result.size, doneBytes: result.size, fetchedBytes: result.fetchedBytes,
                                     elapsed: result.seconds, chunksByHolder: Dictionary(uniqueKeysWithValues: result.holders.map { ($0.user, $0.chunks) }),
                                     holdersInUse: result.holders.count), final: true)
        Output.line("")

        let expected = FileDigest.sha256(path: original)
        let actual = FileDigest.sha256(path: result.path)
        guard let expected, expected == actual else {
            throw CLIError("the copy does not match the original (SHA-256 \(actual ?? "unreadable") vs \(expected ?? "unreadable"))")
        }
        Output.line("Verified: the copy's SHA-256 equals the original's (\(expected.prefix(16))...).")
        Output.line(String(format: "Throughput: %.0f MB/s (%d MiB in %.2f s).", result.megabytesPerSecond, sizeMiB, result.seconds))
        Output.line("Chunks served: " + result.holders.map { "\($0.user) \($0.chunks)" }.joined(separator: ", ")
                    + " (of \(result.fetchedChunks) chunks of \((Int(result.size) / max(1, result.fetchedChunks)) >> 10) KiB).")
        let raw = seeders.reduce(UInt64(0)) { $0 + $1.library.served.rawBytes }
        let wire = seeders.reduce(UInt64(0)) { $0 + $1.library.served.wireBytes }
        Output.line(String(format: "Compression saved %@ on the wire: %@ of chunks travelled as %@ (%.0f %%).",
                           Output.bytes(raw > wire ? raw - wire : 0), Output.bytes(raw), Output.bytes(wire), raw > 0 ? Double(wire) * 100 / Double(raw) : 100))
        if wire * 10 > raw * 9 {
            Output.line("(Over loopback the link is faster than inflating, so the downloader measured both and asked for stored chunks;")
            Output.line(" over a slower link the text half travels at about a fifth of its size. `shoal get --compression always` forces it.)")
        }

        await downloader.stop()
        for seeder in seeders { await seeder.stop() }
        tracker.shutdown()
        await trackerTask.value
    }
}

