import ArgumentParser
import Foundation
import ShoalNet
import ShoalPeer

/// The `shoal` binary a benchmark runs: the one given, or the one built next to `shoal-bench`.
func shoalBinary(_ given: String?) throws -> String {
    let binary = given ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("shoal").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw ValidationError("no shoal binary at \(binary); build it (swift build -c release) or pass --shoal")
    }
    return binary
}

/// A `shoal tracker` process started by a benchmark on a free port: where it
/// listens and how a client trusts it (its printed certificate fingerprint,
/// or in clear with `--insecure`). Killed when the benchmark drops it.
final class TrackerProcess {
    let process: Process
    let port: Int
    let security: ClientSecurity
    /// The same trust as a peer's (``TrackerSession``): its fingerprint pinned, or in clear.
    let trust: TrackerTrust
    var pid: Int32 { process.processIdentifier }

    /// `directory`: its working directory, where it keeps what it writes beside
    /// a database that is not a file (its operator token, its certificate).
    init(binary: String, database: String, insecure: Bool, directory: String? = nil, options: [String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.arguments = ["tracker", "--port", "0", "--db", database, "--registration-burst", "100000"] + options + (insecure ? ["--insecure"] : [])
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        guard let line = TrackerBenchmark.readLine(out.fileHandleForReading), line.hasPrefix("listening on "),
              let port = Int(line.split(separator: ":").last ?? "") else {
            kill(process.processIdentifier, SIGKILL)
            throw ValidationError("the tracker did not start")
        }
        self.port = port
        if insecure {
            security = .plain
            trust = .insecure
        } else {
            let prefix = "certificate fingerprint SHA-256 "
            guard let line = TrackerBenchmark.readLine(out.fileHandleForReading), line.hasPrefix(prefix),
                  let fingerprint = try? CertificateFingerprint(parsing: String(line.dropFirst(prefix.count))) else {
                kill(process.processIdentifier, SIGKILL)
                throw ValidationError("the tracker printed no certificate fingerprint")
            }
            security = .tls(TLSPin(expected: fingerprint, mismatchAdvice: "", plainAdvice: ""))
            trust = .pinned(fingerprint)
        }
    }

    /// Stops it cleanly (SIGTERM) and waits.
    func stop() {
        kill(pid, SIGTERM)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
