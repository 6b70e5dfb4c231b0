import Foundation
import ShoalCore
import ShoalNet
import ShoalTestSupport
import ShoalWire
import Testing

/// A report's `bytes` is a number from the network: whatever it is, the
/// tracker keeps running, keeps its counters in range and never writes a
/// password hash into its log.
@Suite("Report bytes", .timeLimit(.minutes(2)))
struct ReportBytesTests {
    /// A success of 2^64 − 1 bytes about a holder that has served before is
    /// refused as implausible; the tracker stays up, the counters stay as
    /// they were, nothing from the account row reaches the log, and a restart
    /// on the same database serves as before. (Before: the sum overflowed the
    /// column to a floating-point value, GRDB's row decoding trapped, the
    /// crash message printed the holder's row with its password hash, and it
    /// crashed again after every restart.)
    @Test(arguments: TestStore.allCases) func hugeBytesDoNotCrashTheTracker(store: TestStore) async throws {
        let directory = try TemporaryDirectory("shoal-report-bytes")
        defer { directory.remove() }
        let database = directory.file("db.sqlite")
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", database, "--password-rounds", "1000", "--insecure"])
        let port = try #require(try await tracker.waitForLine { $0.hasPrefix("listening on") }.flatMap(ShoalProcess.port(fromListeningLine:)))

        let bob = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer")
        try await bob.register("bob", "secret-of-bob")
        let bobToken = try await bob.login("bob", "secret-of-bob", port: 7001)
        let m = sampleManifest(3)
        try await bob.announce(bobToken, [("big.bin", m)])

        let mallory = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer")
        let malloryToken = try await mallory.signUp("mallory", port: 0)
        // Bob has served something already.
        let first = try #require(try await mallory.details(malloryToken, name: "big.bin").first)
        _ = try await mallory.request(.report(Report(token: malloryToken, contentID: m.contentID, holder: "bob", outcome: .success, bytes: 40_000,
                                                     downloadID: first.downloadID)))
        // Then the huge report, about another content Bob shares, so the once-per-content rule does not refuse it first.
        let other = sampleManifest(4)
        try await bob.announce(bobToken, [("other.bin", other)], replace: false)
        let second = try #require(try await mallory.details(malloryToken, name: "other.bin").first)
        let refusal = await refusalMessage {
            _ = try await mallory.request(.report(Report(token: malloryToken, contentID: other.contentID, holder: "bob", outcome: .success,
                                                         bytes: UInt64.max, downloadID: second.downloadID)))
        }
        #expect(refusal?.contains("18446744073709551615") == true && refusal?.contains("40000") == true,
                "the refusal names the bytes reported and the file's size: \(refusal ?? "accepted")")
        let served = try? await mallory.details(malloryToken, name: "big.bin").first?.holders.first
        let holder = try #require(served, "the tracker died; its stderr:\n\(tracker.errors.prefix(4000))")
        #expect(tracker.process.isRunning)
        #expect(holder.countDownloads == 1 && holder.bytesServed == 40_000)
        #expect(!tracker.errors.contains("pbkdf2"), "a password hash reached the log")
        bob.close()
        mallory.close()
        #expect(try await tracker.stop() == 0, "stderr: \(tracker.errors.suffix(3000))")

        // The same database after a restart: logins and details work, the counters are intact.
        let again = try ShoalProcess(["tracker", "--port", "0", "--db", database, "--password-rounds", "1000", "--insecure"])
        let newPort = try #require(try await again.waitForLine { $0.hasPrefix("listening on") }.flatMap(ShoalProcess.port(fromListeningLine:)))
        let bob2 = try await FramedConnection.connect(host: "127.0.0.1", port: newPort, role: "peer")
        let bob2Token = try await bob2.login("bob", "secret-of-bob", port: 7001)
        try await bob2.announce(bob2Token, [("big.bin", m)])
        let carol = try await FramedConnection.connect(host: "127.0.0.1", port: newPort, role: "peer")
        let carolToken = try await carol.signUp("carol", port: 0)
        let again1 = try #require(try await carol.details(carolToken, name: "big.bin").first?.holders.first)
        #expect(again1.countDownloads == 1 && again1.bytesServed == 40_000)
        #expect(again.process.isRunning && !again.errors.contains("pbkdf2"))
        bob2.close()
        carol.close()
        #expect(try await again.stop() == 0, "stderr: \(again.errors.suffix(3000))")
    }
}
