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

        let status = try ShoalProcess(["tracker", "status", "--tracker", "127.0.0.1:\(port)", "--tracker-fingerprint", printed, "--db", database, "--json"])
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

    /// `status` is for the operator: the tracker writes a token file only its
    /// user can read, the command reads it (by --db or --token-file), and
    /// without the token, or with a wrong one, the tracker refuses.
    @Test func statusNeedsTheOperatorToken() async throws {
        let directory = try TemporaryDirectory("shoal-tracker-operator")
        defer { directory.remove() }
        let database = directory.file("db.sqlite")
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", database, "--password-rounds", "1000", "--insecure"])
        let port = try #require(try await tracker.waitForLine { $0.hasPrefix("listening on") }.flatMap(ShoalProcess.port(fromListeningLine:)))
        let tokenFile = database + "-operator-token"
        let attributes = try FileManager.default.attributesOfItem(atPath: tokenFile)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

        let client = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "tool")
        #expect(await refusalCode { _ = try await client.request(.status(StatusRequest())) } == "not_allowed")
        #expect(await refusalCode { _ = try await client.request(.status(StatusRequest(token: String(repeating: "0", count: 64)))) } == "not_allowed")
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.count == 64)
        guard case let .trackerStatus(reply) = try await client.request(.status(StatusRequest(token: token))) else {
            Issue.record("no status with the token")
            return
        }
        #expect(reply.registered == 0)
        client.close()

        // The command: by --token-file, and a clear error without a readable file.
        let byFile = try ShoalProcess(["tracker", "status", "--insecure", "--tracker", "127.0.0.1:\(port)", "--token-file", tokenFile])
        #expect(try await byFile.waitForExit() == 0)
        #expect(byFile.lines.first == "tracker 127.0.0.1:\(port): 0 registered, 0 connected")
        let missing = try ShoalProcess(["tracker", "status", "--insecure", "--tracker", "127.0.0.1:\(port)", "--db", directory.file("other.sqlite")])
        #expect(try await missing.waitForExit() != 0)
        #expect(missing.errors.contains("cannot read the operator token file"), "stderr: \(missing.errors)")
        // A token from an earlier start is refused once the tracker restarted.
        let stale = directory.file("stale-token")
        try FileManager.default.copyItem(atPath: tokenFile, toPath: stale)
        #expect(try await tracker.stop() == 0)
        let again = try ShoalProcess(["tracker", "--port", "0", "--db", database, "--password-rounds", "1000", "--insecure"])
        let newPort = try #require(try await again.waitForLine { $0.hasPrefix("listening on") }.flatMap(ShoalProcess.port(fromListeningLine:)))
        let old = try ShoalProcess(["tracker", "status", "--insecure", "--tracker", "127.0.0.1:\(newPort)", "--token-file", stale])
        #expect(try await old.waitForExit() != 0)
        #expect(old.errors.contains("refused the operator token"), "stderr: \(old.errors)")
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

        let status = try ShoalProcess(["tracker", "status", "--tracker", "127.0.0.1:\(port)", "--db", directory.file("a.sqlite")])
        #expect(try await status.waitForExit() != 0)
        #expect(status.errors.contains("cannot connect to 127.0.0.1:\(port)"))
        let bad = try ShoalProcess(["tracker", "status", "--tracker", "nowhere"])
        #expect(try await bad.waitForExit() != 0)
    }
}

/// A `shoal` process raises its soft limit on open files to the hard limit:
/// a peer keeps one descriptor per shared file, a tracker one per connection.
@Suite("Open-file limit")
struct FileDescriptorLimitTests {
    @Test func theSoftLimitIsRaisedToTheHardOne() async throws {
        let directory = try TemporaryDirectory("shoal-nofile")
        defer { directory.remove() }
        let output = directory.file("stdout")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -Sn 256 && exec \"$0\" tracker --port 0 --insecure --db \"$1\" > \"$2\"",
                             ShoalProcess.binary, directory.file("t.sqlite"), output]
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        // Once it listens, its limits are set. (Polled, never a blocking read on a test thread.)
        var listening = false
        for _ in 0..<400 where !listening {
            listening = (try? String(contentsOfFile: output, encoding: .utf8))?.hasPrefix("listening on") == true
            if !listening { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(listening, "the tracker did not start")
        let limits = try String(contentsOfFile: "/proc/\(process.processIdentifier)/limits", encoding: .utf8)
        let row = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let numbers = row.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count == 2 && numbers[0] == numbers[1] && numbers[0] > 256, "\(row)")
    }
}
