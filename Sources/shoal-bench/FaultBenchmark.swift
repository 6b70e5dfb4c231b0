import ArgumentParser
import Foundation
import ShoalSamples

/// What a stalled or dead seeder costs a download: `shoal get` from four
/// freshly started seeders on loopback, without a fault, with one seeder
/// stopped (SIGSTOP: connected and silent) a quarter of the way in, and with
/// one stopped and another killed (SIGKILL) at that point.
struct FaultBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "faults",
        abstract: "Time shoal get from 4 seeders with none, one SIGSTOP'd, or one SIGSTOP'd and one SIGKILLed a quarter of the way in.")

    @Option(name: .customLong("mib"), help: "Size of the random file in MiB.") var mib = 256
    @Option(help: "Runs of each scenario; every run is listed.") var runs = 3
    @Option(help: "The shoal binary (default: next to this one).") var shoal: String?

    enum Fault: String, CaseIterable {
        case none, stop = "stop", stopAndKill = "stop+kill"
    }

    func run() async throws {
        let binary = try shoalBinary(shoal)
        let root = NSTemporaryDirectory() + "shoal-faults-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let source = root + "/random.bin"
        try SampleData.writeRandom(path: source, size: mib << 20)
        let size = Double(mib << 20)
        say("Faults: \(mib) MiB of random data from 4 seeders on loopback; each run the first download from freshly started seeders, after writing and deleting 1.5 GiB")
        var summary: [String] = []
        for fault in Fault.allCases {
            var seconds: [Double] = []
            for run in 1...runs {
                let swarm = try await EndToEndBenchmark.Swarm.start(binary: binary, root: root + "/swarm", file: source, name: "random.bin", seeders: 4)
                let folder = root + "/swarm/downloader"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                try EndToEndBenchmark.warmPageCache(root)
                let get = Process()
                get.executableURL = URL(fileURLWithPath: binary)
                get.arguments = ["get", "random.bin", "--user", "downloader", "--dir", folder, "--tracker", swarm.address, "--tracker-fingerprint", swarm.fingerprint, "--listen", "127.0.0.1:0", "--json"]
                get.environment = ProcessInfo.processInfo.environment.merging(["SHOAL_PASSWORD": "pw"]) { $1 }
                let out = Pipe()
                get.standardOutput = out
                get.standardError = FileHandle.nullDevice
                let start = Date()
                try get.run()
                if fault != .none {
                    // A quarter of the way in, by the downloader's own resume map.
                    while get.isRunning && Self.fraction(folder) < 0.25 { usleep(500) }
                    kill(swarm.seeders[0].processIdentifier, SIGSTOP)
                    if fault == .stopAndKill { kill(swarm.seeders[1].processIdentifier, SIGKILL) }
                }
                let output = out.fileHandleForReading.readDataToEndOfFile()
                get.waitUntilExit()
                let elapsed = Date().timeIntervalSince(start)
                kill(swarm.seeders[0].processIdentifier, SIGCONT)
                await swarm.stop()
                let json = (try? JSONSerialization.jsonObject(with: output)) as? [String: Any]
                let holders = (json?["holders"] as? [[String: Any]] ?? []).map { "\($0["user"] ?? "?"):\($0["chunks"] ?? 0)\($0["failed"] != nil ? "(dropped)" : "")" }
                guard get.terminationStatus == 0 else { throw ValidationError("shoal get failed in run \(run) of \(fault.rawValue)") }
                seconds.append(elapsed)
                say(String(format: "%-9@ run %d: %.2f s, %.0f MB/s   %@", fault.rawValue as NSString, run, elapsed, size / elapsed / 1e6,
                           holders.joined(separator: " ") as NSString))
                try? FileManager.default.removeItem(atPath: root + "/swarm")
            }
            summary.append(String(format: "%-9@ %@ s", fault.rawValue as NSString, seconds.map { String(format: "%.2f", $0) }.joined(separator: ", ") as NSString))
        }
        say("")
        for line in summary { say(line) }
    }

    /// The fraction of chunks verified so far by the download in `folder`.
    static func fraction(_ folder: String) -> Double {
        let partial = folder + "/.shoal/partial"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: partial),
              let have = names.first(where: { $0.hasSuffix(".have") }),
              let bits = FileManager.default.contents(atPath: partial + "/" + have), !bits.isEmpty else { return 0 }
        return Double(bits.reduce(0) { $0 + $1.nonzeroBitCount }) / Double(bits.count * 8)
    }

    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
}
