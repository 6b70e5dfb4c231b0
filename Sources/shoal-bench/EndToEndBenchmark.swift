import ArgumentParser
import Foundation
import ShoalCore
import ShoalSamples

/// Shoal against the local limit: `cp` + `openssl dgst -sha256` of the same
/// file, and `shoal get` fetching it from N `shoal seed` processes, for an
/// incompressible file and a log-like text file.
struct EndToEndBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "Time cp+openssl against shoal get from N seeders (separate processes) on a random and a text file.",
        discussion: """
        Setup a real seeder does once (hashing its files, preparing compressed chunks) happens before \
        the timer starts: a seeder prints `serving on` only when it is ready. The timed part is the \
        whole `shoal get` process: start, login, details, download, verification, logout. \
        With --max-download or --max-upload it measures the limit instead: the rate the download \
        achieved (wire bytes over the download's own seconds) against the limit, with no cp+openssl runs.
        """)

    @Option(help: "Seeders.") var seeders = 4
    @Option(name: .customLong("random-mib"), help: "Size of the random file in MiB (0 to skip).") var randomMiB = 1024
    @Option(name: .customLong("text-mib"), help: "Size of the text file in MiB (0 to skip; default: the random file's size, so the fixed cost outside the download weighs the same on both).")
    var textMiB: Int?
    @Option(help: "The shoal binary (default: next to this one).") var shoal: String?
    @Option(help: "Work folder (default: a temporary one, removed afterwards).") var workDir: String?
    @Option(help: "Runs of each measurement; the best is kept, every run is listed.") var runs = 3
    @Option(name: .customLong("chunk-size"), help: "Seeders share in chunks of this many KiB (default: the size rule).") var chunkSizeKiB: Int?
    @OptionGroup var limits: RateLimitOptions
    @Flag(help: "Run the seeders and shoal get with --encrypt: chunks over TLS, each seeder with its own key.")
    var encrypt = false

    /// The rate the download may reach under the limits asked for, in bytes per second; nil: unlimited.
    var limitedRate: Double? {
        let download = limits.download?.bytesPerSecond
        let upload = limits.upload.map { $0.bytesPerSecond * Double(seeders) }
        return [download, upload].compactMap { $0 }.min()
    }

    func run() async throws {
        let binary = try shoalBinary(shoal)
        let root = workDir ?? NSTemporaryDirectory() + "shoal-e2e-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if workDir == nil { try? FileManager.default.removeItem(atPath: root) } }

        var files: [(label: String, name: String, mib: Int)] = []
        if randomMiB > 0 { files.append(("random", "random.bin", randomMiB)) }
        let textMiB = self.textMiB ?? randomMiB
        if textMiB > 0 { files.append(("text", "text.log", textMiB)) }
        say("Shoal end to end: \(seeders) seeders, peer links \(encrypt ? "encrypted (--encrypt, TLS 1.3)" : "in clear (sendfile)"), \(ProcessInfo.processInfo.activeProcessorCount) cores; MB = 10^6 bytes; best of \(runs), each the first download from freshly started seeders, after writing and deleting 1.5 GiB")
        var rows: [String] = []
        for file in files {
            let source = root + "/" + file.name
            // A file left in --work-dir by a run of another size is made again, never timed as this size.
            let existing = (try? FileManager.default.attributesOfItem(atPath: source))?[.size] as? Int
            if existing != file.mib << 20 {
                try? FileManager.default.removeItem(atPath: source)
                say("generating \(file.mib) MiB \(file.label) file ...")
                if file.label == "random" {
                    try SampleData.writeRandom(path: source, size: file.mib << 20)
                } else {
                    try SampleData.writeLogText(path: source, size: file.mib << 20)
                }
            }
            let size = Double(file.mib << 20)
            if let limitedRate {
                try await measureLimit(file: file, source: source, root: root, binary: binary, size: size, rate: limitedRate, rows: &rows)
                continue
            }
            // The local limit: copy the file and hash the copy (page cache warm for both contenders).
            _ = try Self.shell("cat '\(source)' > /dev/null")
            var limit = Double.infinity
            var limitRuns: [Double] = []
            for _ in 0..<runs {
                try? FileManager.default.removeItem(atPath: root + "/copy")
                // Flush earlier runs' dirty pages first: writeback competing with
                // the timed run would throttle whichever contender comes next.
                try Self.warmPageCache(root)
                let start = Date()
                _ = try Self.shell("cp '\(source)' '\(root)/copy' && openssl dgst -sha256 '\(root)/copy' > /dev/null")
                let seconds = Date().timeIntervalSince(start)
                limitRuns.append(seconds)
                limit = min(limit, seconds)
            }
            try? FileManager.default.removeItem(atPath: root + "/copy")

            var best: (seconds: Double, result: [String: Any])?
            var shoalRuns: [Double] = []
            // The download's own seconds in each run, as `shoal get` reports them (start, login and the rest left out).
            var downloadRuns: [Double] = []
            var peakKiB = 0
            for _ in 0..<runs {
                // The first download from freshly started seeders, as a user meets it.
                let extra = (chunkSizeKiB.map { ["--chunk-size", "\($0)"] } ?? []) + (encrypt ? ["--encrypt"] : [])
                let swarm = try await Swarm.start(binary: binary, root: root + "/swarm-\(file.label)", file: source, name: file.name,
                                                  seeders: seeders, seederOptions: extra)
                let folder = root + "/swarm-\(file.label)/downloader"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try Self.warmPageCache(root)
                let start = Date()
                let output = try swarm.get(name: file.name, folder: folder, options: encrypt ? ["--encrypt"] : [])
                let seconds = Date().timeIntervalSince(start)
                await swarm.stop()
                guard let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
                    throw ValidationError("shoal get printed no result: \(output)")
                }
                shoalRuns.append(seconds)
                downloadRuns.append((json["seconds"] as? Double) ?? .nan)
                peakKiB = max(peakKiB, (json["peakMemoryKiB"] as? Int) ?? 0)
                if best == nil || seconds < best!.seconds { best = (seconds, json) }
                try? FileManager.default.removeItem(atPath: folder)
            }
            let (seconds, result) = best!
            let wire = (result["wireBytes"] as? Double) ?? Double(result["wireBytes"] as? Int ?? 0)
            let inside = (result["seconds"] as? Double) ?? 0
            let shoalRate = size / seconds / 1e6
            let limitRate = size / limit / 1e6
            rows.append(String(format: "%-7@ %6d MiB  limit %6.0f MB/s   shoal %6.0f MB/s (%3.0f %% of the limit), download only %6.0f MB/s   wire %5.1f %% of size   downloader peak %4d MiB   (process %.2f s, download %.2f s)",
                               file.label as NSString, file.mib, limitRate, shoalRate, shoalRate / limitRate * 100, size / inside / 1e6, wire / size * 100,
                               peakKiB / 1024, seconds, inside))
            let rates = { (runs: [Double]) in runs.map { String(format: "%.0f", size / $0 / 1e6) }.joined(separator: ", ") }
            rows.append("        every run, MB/s: limit \(rates(limitRuns)); shoal \(rates(shoalRuns)) (whole process), \(rates(downloadRuns)) (download only); peak is the highest of the runs")
            say(rows[rows.count - 2])
            say(rows.last!)
        }
        say("")
        for row in rows { say(row) }
    }

    /// Runs `shoal get` under the rate limits asked for and prints the rate each run achieved against the limit.
    func measureLimit(file: (label: String, name: String, mib: Int), source: String, root: String, binary: String, size: Double, rate: Double,
                      rows: inout [String]) async throws {
        let seederOptions = limits.seedArguments
        let getOptions = limits.getArguments
        let swarm = try await Swarm.start(binary: binary, root: root + "/swarm-\(file.label)", file: source, name: file.name, seeders: seeders,
                                          seederOptions: seederOptions)
        do {
            try runLimited(swarm: swarm, file: file, root: root, size: size, rate: rate, options: getOptions, rows: &rows)
        } catch {
            await swarm.stop()
            throw error
        }
        await swarm.stop()
    }

    private func runLimited(swarm: Swarm, file: (label: String, name: String, mib: Int), root: String, size: Double, rate: Double,
                            options getOptions: [String], rows: inout [String]) throws {
        for run in 0..<runs {
            let folder = root + "/swarm-\(file.label)/downloader-\(run)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let start = Date()
            let output = try swarm.get(name: file.name, folder: folder, options: getOptions)
            let process = Date().timeIntervalSince(start)
            guard let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
                  let seconds = json["seconds"] as? Double else {
                throw ValidationError("shoal get printed no result: \(output)")
            }
            let wire = (json["wireBytes"] as? Double) ?? Double(json["wireBytes"] as? Int ?? 0)
            let achieved = wire / seconds
            rows.append(String(format: "%-7@ %6d MiB  limit %@   achieved %.3f MB/s on the wire (%.1f %% of the limit), file %.3f MB/s   (download %.2f s, process %.2f s)",
                               file.label as NSString, file.mib, "\(TransferRate(bytesPerSecond: rate))" as NSString, achieved / 1e6,
                               achieved / rate * 100, size / seconds / 1e6, seconds, process))
            say(rows.last!)
            try? FileManager.default.removeItem(atPath: folder)
        }
    }

    /// A tracker and N seeders as processes, ready to serve one file.
    struct Swarm {
        let binary: String
        let tracker: Process
        let seeders: [Process]
        let address: String
        /// `--tracker-fingerprint FP`: every process pins the tracker's certificate as it printed it.
        let fingerprint: String

        static func start(binary: String, root: String, file: String, name: String, seeders count: Int,
                          seederOptions: [String] = []) async throws -> Swarm {
            try? FileManager.default.removeItem(atPath: root)
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            let (tracker, line) = try launch(binary, ["tracker", "--port", "0", "--db", root + "/tracker.sqlite", "--log-level", "warning"], password: nil)
            guard line.hasPrefix("listening on ") else { throw ValidationError("the tracker did not start: \(line)") }
            let address = String(line.dropFirst("listening on ".count))
            let fingerprintLine = readLine(tracker.standardOutput as! Pipe)
            let prefix = "certificate fingerprint SHA-256 "
            guard fingerprintLine.hasPrefix(prefix) else { throw ValidationError("the tracker printed no fingerprint: \(fingerprintLine)") }
            let fingerprint = String(fingerprintLine.dropFirst(prefix.count))
            for user in (1...count).map({ "seeder\($0)" }) + ["downloader"] {
                _ = try shell("SHOAL_PASSWORD=pw '\(binary)' register --user \(user) --tracker \(address) --tracker-fingerprint \(fingerprint) > /dev/null")
            }
            var seeders: [Process] = []
            for i in 1...count {
                let folder = root + "/seeder\(i)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                if link(file, folder + "/" + name) != 0 { try FileManager.default.copyItem(atPath: file, toPath: folder + "/" + name) }
                let (seeder, ready) = try launch(binary, ["seed", "--user", "seeder\(i)", "--dir", folder, "--tracker", address, "--tracker-fingerprint", fingerprint,
                                                          "--listen", "127.0.0.1:0", "--log-level", "warning"]
                                                 + seederOptions, password: "pw")
                guard ready.hasPrefix("serving on") else { throw ValidationError("seeder\(i) did not start: \(ready)") }
                seeders.append(seeder)
            }
            return Swarm(binary: binary, tracker: tracker, seeders: seeders, address: address, fingerprint: fingerprint)
        }

        func get(name: String, folder: String, options: [String] = []) throws -> String {
            try shell("SHOAL_PASSWORD=pw '\(binary)' get '\(name)' --user downloader --dir '\(folder)' --tracker \(address) --tracker-fingerprint \(fingerprint) --listen 127.0.0.1:0 --json "
                      + options.map { "'\($0)'" }.joined(separator: " ") + " 2>/dev/null")
        }

        func stop() async {
            for process in seeders + [tracker] { kill(process.processIdentifier, SIGTERM) }
            for process in seeders + [tracker] { process.waitUntilExit() }
        }

        /// Starts `binary arguments` and returns it with its first stdout line.
        static func launch(_ binary: String, _ arguments: [String], password: String?) throws -> (Process, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            if let password { environment["SHOAL_PASSWORD"] = password }
            process.environment = environment
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            try process.run()
            return (process, readLine(pipe))
        }

        /// The next line of `pipe`, without its newline.
        static func readLine(_ pipe: Pipe) -> String {
            var line = Data()
            while true {
                let byte = pipe.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty || byte.first == 0x0A { break }
                line.append(byte)
            }
            return String(decoding: line, as: UTF8.self)
        }
    }

    /// Flushes earlier runs' dirty pages, then writes and deletes 1.5 GiB: on
    /// these VMs the first big write into memory left idle costs up to 28
    /// times more (FACTS.md), and whoever ran first would pay it.
    static func warmPageCache(_ root: String) throws {
        _ = try shell("sync && dd if=/dev/zero of='\(root)/warm' bs=1M count=1536 status=none && rm '\(root)/warm' && sync")
    }

    @discardableResult
    static func shell(_ command: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("command failed (\(process.terminationStatus)): \(command)") }
        return String(decoding: output, as: UTF8.self)
    }

    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
}
