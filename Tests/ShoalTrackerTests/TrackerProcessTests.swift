import Foundation
import ShoalNet
import ShoalTestSupport
import ShoalWire
import Testing

/// `shoal tracker` as a real process: its first line, its status command, a
/// restart on the same database, and a clean stop on SIGINT and SIGTERM.
@Suite("shoal tracker process", .timeLimit(.minutes(2)))
struct TrackerProcessTests {
    @Test(arguments: [SIGTERM, SIGINT])
    func startStatusAndCleanStop(signal: Int32) async throws {
        let directory = try TemporaryDirectory("shoal-tracker-process")
        defer { directory.remove() }
        let database = directory.file("db.sqlite")
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", database, "--password-rounds", "1000"])
        let first = try await tracker.waitForLine { _ in true }
        let port = try #require(first.flatMap(ShoalProcess.port(fromListeningLine:)), "first line: \(first ?? "none"), stderr: \(tracker.errors)")
        #expect(first == "listening on 127.0.0.1:\(port)")
        let printed = try #require(try await tracker.waitForFingerprint(), "stdout: \(tracker.lines)")
        let fingerprint = try CertificateFingerprint(parsing: printed)
        #expect(printed == fingerprint.grouped)
        let pin = ClientSecurity.tls(TLSPin(expected: fingerprint, mismatchAdvice: "", plainAdvice: ""))

        let client = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", security: pin)
        try await client.register("maria", "pw")
        _ = try await client.login("maria", "pw")

        let status = try ShoalProcess(["tracker", "status", "--tracker", "127.0.0.1:\(port)", "--tracker-fingerprint", printed, "--json"])
        #expect(try await status.waitForExit() == 0, "stderr: \(status.errors)")
        let json = status.lines.joined(separator: "\n")
        let decoded = try JSONDecoder().decode(TrackerStatus.self, from: Data(json.utf8))
        #expect(decoded.registered == 1 && decoded.connected == 1)
        #expect(!json.contains("pw"), "no password in the status")

        #expect(try await tracker.stop(signal: signal) == 0, "stderr: \(tracker.errors)")
        #expect(tracker.errors.contains("register: maria"))
        #expect(tracker.errors.contains("tracker stopped"))
        client.close()

        // The account survives a restart on the same database, and so does the certificate beside it.
        let again = try ShoalProcess(["tracker", "--port", "0", "--db", database, "--password-rounds", "1000"])
        let line = try await again.waitForLine { $0.hasPrefix("listening on") }
        let newPort = try #require(line.flatMap(ShoalProcess.port(fromListeningLine:)))
        #expect(try await again.waitForFingerprint() == printed)
        let second = try await FramedConnection.connect(host: "127.0.0.1", port: newPort, role: "peer", security: pin)
        _ = try await second.login("maria", "pw")
        second.close()
        #expect(try await again.stop() == 0)
    }

    /// A port in use and an unreachable tracker give one clear line and a non-zero exit.
    @Test func clearErrors() async throws {
        let directory = try TemporaryDirectory("shoal-tracker-errors")
        defer { directory.remove() }
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", directory.file("a.sqlite")])
        let port = try #require(try await tracker.waitForLine { _ in true }.flatMap(ShoalProcess.port(fromListeningLine:)))
        let clash = try ShoalProcess(["tracker", "--port", "\(port)", "--db", directory.file("b.sqlite")])
        #expect(try await clash.waitForExit() != 0)
        #expect(clash.errors.contains("cannot listen on 127.0.0.1:\(port)"))
        _ = try await tracker.stop()

        let status = try ShoalProcess(["tracker", "status", "--tracker", "127.0.0.1:\(port)"])
        #expect(try await status.waitForExit() != 0)
        #expect(status.errors.contains("cannot connect to 127.0.0.1:\(port)"))
        let bad = try ShoalProcess(["tracker", "status", "--tracker", "nowhere"])
        #expect(try await bad.waitForExit() != 0)
    }
}
