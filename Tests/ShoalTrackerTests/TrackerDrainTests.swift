import Foundation
import GRDB
import ShoalCore
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
    /// CPU time (user + system) a process has used so far, from /proc.
    static func cpuSeconds(of pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// SIGTERM while the PostgreSQL store has gone silent (everything sent
    /// to it is dropped on the way) and an announce waits on it: once the
    /// drain's deadline (1 s) has passed, the tracker gives up on the store
    /// and exits within the service group's cancellation grace (5 s), which
    /// the library enforces by ending the process with a trap. It used to
    /// wait 10 s for the store's writes and crashed.
    @Test func aSilentStoreDoesNotOutlastTheCancellationGrace() async throws {
        let cluster = try await PostgresCluster.shared()
        let database = try await cluster.newDatabase()
        let relay = try RecordingRelay(targetPort: cluster.port)
        defer { relay.stop() }
        let root = try TemporaryDirectory("shoal-silent-store")
        defer { root.remove() }
        let url = "postgres://\(cluster.user)@127.0.0.1:\(relay.port)/\(database.database)?sslmode=disable"
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", url, "--password-rounds", "1000", "--insecure",
                                        "--drain-seconds", "1", "--token-file", root.file("token")], currentDirectory: root.path)
        let line = try await tracker.waitForLine { $0.hasPrefix("listening on") }
        let port = try #require(line.flatMap(ShoalProcess.port(fromListeningLine:)), "the tracker did not start: \(tracker.errors)")

        let client = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(30), security: .plain)
        defer { client.close() }
        _ = try await client.request(.register(Register(user: "alice", password: "pw-alice")), timeout: .seconds(60))
        guard case let .loggedIn(session) = try await client.request(.login(Login(user: "alice", password: "pw-alice", port: 9000)),
                                                                      timeout: .seconds(60)) else {
            Issue.record("alice could not log in: \(tracker.errors)")
            return
        }
        func announce(_ seed: UInt8) -> Message {
            let m = sampleManifest(seed, chunks: 4)
            return .announce(Announce(token: session.token, replace: false,
                                      files: [AnnouncedFile(name: "f\(seed).bin", contentID: m.contentID, manifest: ManifestPayload(m))]))
        }
        _ = try await client.request(announce(1), timeout: .seconds(60))

        // The store goes silent; the next announce waits on it: its write
        // reaches the relay and no answer comes back, or (on a loaded run)
        // it queues behind a lease renewal that went out just before and
        // got no answer either. Either way no reply comes.
        relay.swallow()
        let answered = AnsweredFlag()
        let pending = Task {
            _ = try? await client.request(announce(2), timeout: .seconds(60))
            answered.flag.store(true, ordering: .sequentiallyConsistent)
        }
        defer { pending.cancel() }
        var waiting = false
        for attempt in 0..<600 where !waiting {
            waiting = relay.saw("f2.bin") || (attempt >= 60 && !answered.flag.load(ordering: .sequentiallyConsistent))
            if !waiting { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(waiting && !answered.flag.load(ordering: .sequentiallyConsistent),
                "the second announce did not wait on the store: \(tracker.errors.suffix(2000))")

        let status = try await tracker.stop(signal: SIGTERM, timeout: 30)
        #expect(status != nil, "the tracker did not exit within 30 s of SIGTERM")
        #expect(tracker.process.terminationReason == .exit,
                "the tracker ended by signal \(tracker.process.terminationStatus), not by exiting: \(tracker.errors.suffix(3000))")
        #expect(tracker.errors.contains("store writes still unfinished"), "\(tracker.errors.suffix(3000))")
    }

    /// SIGTERM while eight registrations are being hashed: all eight are
    /// answered, the tracker exits 0, its database checks whole, and a new
    /// tracker on it has every account, password and counter.
    @Test func trackerStoppedWithSIGTERMDrains() async throws {
        // Slow password hashing (500,000 rounds of PBKDF2, about half a second
        // each here, two at a time), so that a burst of registrations is
        // still being handled when the signal comes. A deadline long enough
        // for all of them: what is tested is that they are answered.
        let swarm = try await ProcessSwarm(trackerOptions: ["--password-rounds", "500000", "--drain-seconds", "30"])
        // A download first, so that the seeder has a counter to keep.
        _ = try swarm.folder("seeder1", files: ["c.bin": TestData.random(2 << 20, seed: 21)])
        try await swarm.seed("seeder1")
        try await swarm.register("early")
        #expect(try await swarm.get("c.bin", user: "early").waitForExit(timeout: 120) == 0)
        let before = try await swarm.counters("countDownloads", ofUsersStartingWith: "seeder")
        #expect((before["seeder1"] ?? 0) >= 1, "\(before)")

        let pin = ClientSecurity.tls(TLSPin(expected: try CertificateFingerprint(parsing: swarm.fingerprint), mismatchAdvice: "", plainAdvice: ""))
        var clients: [FramedConnection] = []
        for _ in 0..<8 {
            clients.append(try await FramedConnection.connect(host: "127.0.0.1", port: swarm.trackerPort, role: "peer", timeout: .seconds(30), security: pin))
        }
        let tracker = swarm.tracker
        let pid = tracker.process.processIdentifier
        let cpuBefore = try #require(Self.cpuSeconds(of: pid))
        let connections = clients
        let burst = Task {
            await withTaskGroup(of: (user: String, error: String?).self) { group in
                for (i, client) in connections.enumerated() {
                    group.addTask {
                        do {
                            _ = try await client.request(.register(Register(user: "burst\(i)", password: "pw-burst\(i)")), timeout: .seconds(60))
                            return ("burst\(i)", nil)
                        } catch {
                            return ("burst\(i)", "\(error)")
                        }
                    }
                }
                return await group.reduce(into: [(user: String, error: String?)]()) { $0.append($1) }
            }
        }
        // SIGTERM once the tracker has spent 0.3 s of CPU on the
        // burst: hashing has begun, and about 4 s of CPU of it are still to come.
        // (Its answers go out together at the end: each account is counted
        // after its hash, on the same two threads.)
        var hashing = false
        for _ in 0..<3000 where !hashing {
            hashing = (Self.cpuSeconds(of: pid) ?? 0) - cpuBefore >= 0.3
            if !hashing { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(hashing, "the tracker did not start hashing")
        let sent = Date()
        let status = try await tracker.stop(signal: SIGTERM, timeout: 60)
        let seconds = Date().timeIntervalSince(sent)
        let outcomes = await burst.value
        let registered = outcomes.filter { $0.error == nil }.map(\.user)
        let refused = outcomes.compactMap { outcome in outcome.error.map { "\(outcome.user): \($0)" } }
        print("tracker: SIGTERM to exit \(String(format: "%.2f", seconds)) s (deadline 30 s); \(registered.count) registrations answered, \(refused.count) cut")
        #expect(status == 0, "\(tracker.errors.suffix(2000))")
        // From the tracker's side: requests were being handled when it began
        // to drain, and accounts were made after that, each answered.
        let log = tracker.errors
        let draining = try #require(log.range(of: "tracker draining: accepting no new connections; "), "\(log.suffix(2000))")
        let busy = Int(log[draining.upperBound...].prefix { $0.isNumber }) ?? 0
        let madeAfter = log[draining.upperBound...].components(separatedBy: "register: burst").count - 1
        print("tracker: \(busy) connections handling requests when it began to drain; \(madeAfter) accounts made after that")
        #expect(busy >= 1 && madeAfter >= 1, "\(log.suffix(3000))")
        #expect(tracker.errors.contains("tracker stopped"), "\(tracker.errors.suffix(2000))")
        for client in clients { client.close() }

        // The database is whole, and a new tracker has every account and counter.
        let database = try DatabaseQueue(path: swarm.root.file("tracker.sqlite"))
        let check = try await database.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") }
        #expect(check == "ok")
        try database.close()
        try await swarm.startTrackerAgain()
        let again = try await FramedConnection.connect(host: "127.0.0.1", port: swarm.trackerPort, role: "peer", timeout: .seconds(30), security: pin)
        // Logging in costs a hash each: two of them show the passwords were kept.
        for user in registered.sorted().prefix(2) { _ = try await again.login(user, "pw-\(user)") }
        again.close()
        let status2 = try await swarm.status()
        #expect(status2["registered"] as? Int == 2 + registered.count, "\(status2)")
        // On a failure, what the tracker logged about those users and its drain, for whoever looks into it.
        let cut = outcomes.filter { $0.error != nil }.map(\.user)
        let told = log.split(separator: "\n").filter { line in line.contains("draining") || line.contains("stopped") || line.contains("liveness") || cut.contains { line.contains($0) } }
        #expect(refused.isEmpty, "every request was taken before the signal, so each is answered: \(refused)\ntracker: \(told.joined(separator: "\n"))")
        let after = DownloadWatch.counters("countDownloads", in: status2, ofUsersStartingWith: "seeder")
        #expect(after == before, "counters \(before) before the stop, \(after) after")
        await swarm.stop()
    }
}

/// Set once a request has its reply.
private final class AnsweredFlag: Sendable {
    let flag = Atomic<Bool>(false)
}
