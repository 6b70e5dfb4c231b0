import Foundation
import ShoalTestSupport
import Testing

/// TLS options of the command line as a user meets them: each mistake ends
/// at once with one line that says which option to use.
@Suite("shoal command line, TLS", .timeLimit(.minutes(2)))
struct TLSCommandLineTests {
    /// A tracker with `--insecure`: a peer without it is told to add it (or
    /// to restart the tracker without it); with it, it registers.
    @Test func insecureOnBothSidesOnly() async throws {
        let root = try TemporaryDirectory("shoal-insecure")
        defer { root.remove() }
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", root.file("t.sqlite"), "--password-rounds", "1000", "--insecure"])
        defer { Task { _ = try? await tracker.stop() } }
        let port = try #require(try await tracker.waitForLine { _ in true }.flatMap(ShoalProcess.port(fromListeningLine:)))
        #expect(try await tracker.waitForLine { $0.hasPrefix("serving in clear") } != nil)
        #expect(!FileManager.default.fileExists(atPath: root.file("t-cert.pem")), "no certificate made in clear")
        let address = "127.0.0.1:\(port)"

        let secure = try ShoalProcess(["register", "--user", "ana", "--tracker", address], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await secure.waitForExit() != 0)
        #expect(secure.errors.contains("answered in clear, not TLS; it runs with --insecure: to talk to it in clear"), "\(secure.errors)")

        let clear = try ShoalProcess(["register", "--user", "ana", "--tracker", address, "--insecure"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await clear.waitForExit() == 0, "\(clear.errors)")
    }

    /// A TLS tracker: a peer with `--insecure` is told to leave it out; a
    /// wrong `--tracker-fingerprint` and a changed pin in the known-trackers
    /// file are refused with what to do; the first use pins the printed fingerprint.
    @Test func tlsTrackerRefusesMistakes() async throws {
        let root = try TemporaryDirectory("shoal-tls-cli")
        defer { root.remove() }
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", root.file("t.sqlite"), "--password-rounds", "1000"])
        defer { Task { _ = try? await tracker.stop() } }
        let port = try #require(try await tracker.waitForLine { _ in true }.flatMap(ShoalProcess.port(fromListeningLine:)))
        let printed = try #require(try await tracker.waitForFingerprint())
        let address = "127.0.0.1:\(port)"
        // The key beside the database is the tracker's own: mode 0600.
        let mode = try FileManager.default.attributesOfItem(atPath: root.file("t-key.pem"))[.posixPermissions] as? Int
        #expect(mode == 0o600)

        let clear = try ShoalProcess(["register", "--user", "ana", "--tracker", address, "--insecure"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await clear.waitForExit() != 0)
        #expect(clear.errors.contains("this tracker speaks TLS only; leave out --insecure"), "\(clear.errors)")

        let wrong = String(repeating: "ab", count: 32)
        let pinned = try ShoalProcess(["register", "--user", "ana", "--tracker", address, "--tracker-fingerprint", wrong], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await pinned.waitForExit() != 0)
        #expect(pinned.errors.contains("Check --tracker-fingerprint"), "\(pinned.errors)")

        // First use: pinned in the file named by SHOAL_KNOWN_TRACKERS.
        let known = root.file("known_trackers")
        let first = try ShoalProcess(["register", "--user", "ana", "--tracker", address],
                                     environment: ["SHOAL_PASSWORD": "pw", "SHOAL_KNOWN_TRACKERS": known])
        #expect(try await first.waitForExit() == 0, "\(first.errors)")
        let line = try String(contentsOfFile: known, encoding: .utf8)
        #expect(line == "\(address) \(printed.replacingOccurrences(of: ":", with: "").lowercased())\n")

        // The tracker's key "changed": the pin no longer matches.
        try "\(address) \(wrong)\n".write(toFile: known, atomically: true, encoding: .utf8)
        let changed = try ShoalProcess(["list", "--user", "ana", "--tracker", address, "--known-trackers", known], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await changed.waitForExit() != 0)
        #expect(changed.errors.contains("remove the line for \(address) from \(known)"), "\(changed.errors)")
        #expect(!tracker.errors.contains("login: ana"), "the refused peer sent nothing")
    }
}

/// `--tls-cert` and `--tls-key`: the tracker serves with the given pair
/// (the fingerprint of a pair made by an earlier start), and a missing file
/// is an error, never replaced by a new certificate.
@Suite("shoal tracker --tls-cert", .timeLimit(.minutes(2)))
struct TrackerCertificateOptionTests {
    @Test func givenPairIsUsed() async throws {
        let root = try TemporaryDirectory("shoal-tls-files")
        defer { root.remove() }
        let first = try ShoalProcess(["tracker", "--port", "0", "--db", root.file("a.sqlite"), "--password-rounds", "1000"])
        let made = try #require(try await first.waitForFingerprint(), "\(first.errors)")
        #expect(try await first.stop() == 0)

        let given = try ShoalProcess(["tracker", "--port", "0", "--db", root.file("b.sqlite"), "--password-rounds", "1000",
                                      "--tls-cert", root.file("a-cert.pem"), "--tls-key", root.file("a-key.pem")])
        #expect(try await given.waitForFingerprint() == made, "\(given.errors)")
        #expect(try await given.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: root.file("b-cert.pem")), "nothing made beside the database")

        let missing = try ShoalProcess(["tracker", "--port", "0", "--db", root.file("c.sqlite"),
                                        "--tls-cert", root.file("none.pem"), "--tls-key", root.file("a-key.pem")])
        #expect(try await missing.waitForExit() != 0)
        #expect(missing.errors.contains("cannot read \(root.file("none.pem"))"), "\(missing.errors)")
        #expect(!FileManager.default.fileExists(atPath: root.file("none.pem")))
    }
}
