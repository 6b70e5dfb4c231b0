import Foundation
import GRDB
import ShoalNet
import ShoalTestSupport
import ShoalWire
import Synchronization
import Testing

/// `shoal tracker` stopped with SIGTERM while it handles requests: it answers
/// those, accepts nothing new, exits 0, and leaves a database that a new
/// tracker opens with every account and counter.
@Suite("shoal tracker drains on SIGTERM", .timeLimit(.minutes(5)))
struct TrackerDrainTests {
    /// Whether the signal was sent yet, as the clients' tasks see it.
    final class Signalled: Sendable {
        private let sent = Mutex(false)
        func mark() { sent.withLock { $0 = true } }
        var isSet: Bool { sent.withLock { $0 } }
    }

    @Test func trackerStoppedWithSIGTERMDrains() async throws {
        // Real password hashing (210,000 rounds of PBKDF2, about 0.1 s each):
        // a burst of registrations is still being handled when the signal comes.
        let swarm = try await ProcessSwarm(trackerOptions: ["--password-rounds", "210000", "--drain-seconds", "10"])
        // A download first, so that the seeder has a counter to keep.
        _ = try swarm.folder("seeder1", files: ["c.bin": TestData.random(2 << 20, seed: 21)])
        try await swarm.seed("seeder1")
        try await swarm.register("early")
        #expect(try await swarm.get("c.bin", user: "early").waitForExit(timeout: 120) == 0)
        let before = try await swarm.counters("countDownloads", ofUsersStartingWith: "seeder")
        #expect((before["seeder1"] ?? 0) >= 1, "\(before)")

        let pin = ClientSecurity.tls(TLSPin(expected: try CertificateFingerprint(parsing: swarm.fingerprint), mismatchAdvice: "", plainAdvice: ""))
        var clients: [FramedConnection] = []
        for _ in 0..<12 {
            clients.append(try await FramedConnection.connect(host: "127.0.0.1", port: swarm.trackerPort, role: "peer", timeout: .seconds(30), security: pin))
        }
        let signalled = Signalled()
        let tracker = swarm.tracker
        var registered: [String] = []
        var answeredAfterSignal = 0
        var refused: [String] = []
        var sent = Date()
        try await withThrowingTaskGroup(of: (user: String, ok: Bool, afterSignal: Bool, error: String).self) { group in
            for (i, client) in clients.enumerated() {
                group.addTask {
                    do {
                        try await client.register("burst\(i)", "pw-burst\(i)")
                        return ("burst\(i)", true, signalled.isSet, "")
                    } catch {
                        return ("burst\(i)", false, signalled.isSet, "\(error)")
                    }
                }
            }
            // SIGTERM as soon as the first answer is in: the rest are being handled.
            for try await outcome in group {
                if !signalled.isSet {
                    sent = Date()
                    kill(tracker.process.processIdentifier, SIGTERM)
                    signalled.mark()
                }
                if outcome.ok {
                    registered.append(outcome.user)
                    if outcome.afterSignal { answeredAfterSignal += 1 }
                } else {
                    refused.append("\(outcome.user): \(outcome.error)")
                }
            }
        }
        let status = try await tracker.waitForExit(timeout: 30)
        let seconds = Date().timeIntervalSince(sent)
        print("tracker: SIGTERM to exit \(String(format: "%.2f", seconds)) s (deadline 10 s); \(answeredAfterSignal) requests answered after the signal, \(refused.count) cut")
        #expect(status == 0, "\(tracker.errors.suffix(2000))")
        #expect(answeredAfterSignal >= 1, "requests in progress should be answered after the signal: registered \(registered), refused \(refused)")
        #expect(tracker.errors.contains("tracker draining"), "\(tracker.errors.suffix(2000))")
        #expect(tracker.errors.contains("tracker stopped"), "\(tracker.errors.suffix(2000))")
        // A request not yet taken when the drain began is not answered: its connection closes, it never hangs.
        for line in refused { #expect(line.contains("closed"), "\(line)") }
        for client in clients { client.close() }

        // The database is whole, and a new tracker has every account and counter.
        let database = try DatabaseQueue(path: swarm.root.file("tracker.sqlite"))
        let check = try await database.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        #expect(check == "ok")
        try database.close()
        try await swarm.startTrackerAgain()
        let again = try await FramedConnection.connect(host: "127.0.0.1", port: swarm.trackerPort, role: "peer", timeout: .seconds(30), security: pin)
        for user in registered { _ = try await again.login(user, "pw-\(user)") }
        again.close()
        let status2 = try await swarm.status()
        #expect(status2["registered"] as? Int == 2 + registered.count, "\(status2)")
        let after = DownloadWatch.counters("countDownloads", in: status2, ofUsersStartingWith: "seeder")
        #expect(after == before, "counters \(before) before the stop, \(after) after")
        await swarm.stop()
    }
}
