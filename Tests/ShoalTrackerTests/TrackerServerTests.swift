import Foundation
import NIOCore
import ShoalCore
import ShoalNet
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// A real tracker on a loopback port, driven through the real protocol.
@Suite("Tracker server", .timeLimit(.minutes(2)))
struct TrackerServerTests {
    /// A peer that advertises an address is handed out at it; one that
    /// advertises no single host, or loopback from afar, is refused.
    @Test(arguments: TestStore.allCases) func advertisedAddresses(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let alice = try await tracker.connect()
        let bob = try await tracker.connect()
        try await alice.register("alice", "secret-of-alice")
        for bad in ["0.0.0.0", "::", "224.0.0.9", "not a host", "[::1"] {
            #expect(await refusalCode { _ = try await alice.login("alice", "secret-of-alice", port: 7001, advertising: bad) } == "bad_request", "\(bad) accepted")
        }
        let token = try await alice.login("alice", "secret-of-alice", port: 7001, advertising: "[2001:db8::5]")
        let m = sampleManifest(2)
        try await alice.announce(token, [("v6.bin", m)])
        let bobToken = try await bob.signUp("bob")
        let holder = try #require(try await bob.details(bobToken, name: "v6.bin").first?.holders.first)
        #expect(holder.host == "2001:db8::5" && holder.port == 7001)
        #expect(tracker.log.contains("advertising 2001:db8::5"))
        // Loopback is handed out only for a peer on the tracker's own machine.
        #expect(try Tracker.servingHost(advertised: "127.0.0.1", observed: "127.0.0.1") == "127.0.0.1")
        #expect(try Tracker.servingHost(advertised: "::ffff:198.18.0.9", observed: "127.0.0.1") == "198.18.0.9")
        #expect(try Tracker.servingHost(advertised: nil, observed: "198.18.0.3") == "198.18.0.3")
        #expect(throws: TrackerError.self) { try Tracker.servingHost(advertised: "127.0.0.1", observed: "198.18.0.3") }
        #expect(throws: TrackerError.self) { try Tracker.servingHost(advertised: "localhost", observed: "198.18.0.3") }
        await tracker.stopAndRemove()
    }

    /// register, login, announce, list, details, report, status and logout, end to end.
    @Test(arguments: TestStore.allCases) func everyRequest(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let alice = try await tracker.connect()
        let bob = try await tracker.connect()
        let aliceToken = try await alice.signUp("alice", port: 7001)
        let bobToken = try await bob.signUp("bob", port: 7002)
        let m = sampleManifest(1)
        #expect(try await alice.announce(aliceToken, [("notes.txt", m)]) == 1)

        let list = try await bob.list(bobToken)
        #expect(list == [ListedFile(name: "notes.txt", contentID: m.contentID, size: 40_000, holders: 1, partialHolders: 0)])
        let details = try await bob.details(bobToken, name: "notes.txt")
        #expect(details.count == 1)
        let holder = try #require(details.first?.holders.first)
        #expect(holder.user == "alice" && holder.host == "127.0.0.1" && holder.port == 7001)
        #expect(holder.countDownloads == 0 && holder.countFailures == 0)
        #expect(try details[0].manifest?.manifest(expecting: m.contentID) == m)

        let id = try #require(details[0].downloadID)
        guard case let .reported(reported) = try await bob.request(.report(Report(token: bobToken, contentID: m.contentID, holder: "alice", outcome: .success, bytes: 40_000, downloadID: id))) else {
            Issue.record("no reported reply")
            return
        }
        #expect(reported.countDownloads == 1 && reported.countFailures == 0)
        // A second report about the same holder and content is refused, and one without a download id.
        #expect(await refusalCode { _ = try await bob.request(.report(Report(token: bobToken, contentID: m.contentID, holder: "alice", outcome: .failure, bytes: 0, downloadID: id))) } == "not_allowed")
        #expect(await refusalCode { _ = try await bob.request(.report(Report(token: bobToken, contentID: m.contentID, holder: "alice", outcome: .failure, bytes: 0))) } == "not_allowed")
        // Nobody reports about a holder they were not given.
        #expect(await refusalCode { _ = try await alice.request(.report(Report(token: aliceToken, contentID: m.contentID, holder: "bob", outcome: .failure, bytes: 0))) } == "not_allowed")
        // The counter shows in the next details.
        #expect(try await bob.details(bobToken, contentID: m.contentID).first?.holders.first?.countDownloads == 1)

        let status = try await bob.status(operatorToken: tracker.operatorToken)
        #expect(status.registered == 2 && status.connected == 2)
        #expect(status.files.map(\.holders) == [["alice"]])
        #expect(status.peers.first { $0.user == "alice" }?.bytesServed == 40_000)

        _ = try await alice.request(.logout(Logout(token: aliceToken)))
        #expect(try await bob.list(bobToken).isEmpty, "a logged-out peer's files go")
        #expect(await refusalCode { _ = try await alice.list(aliceToken) } == "not_logged_in")
        #expect(try await bob.status(operatorToken: tracker.operatorToken).connected == 1)

        // Nothing secret was logged, and each event was.
        for secret in ["secret-of-alice", "secret-of-bob", aliceToken, bobToken] {
            #expect(!tracker.log.contains(secret), "the log contains a secret")
        }
        for event in ["register: alice", "login: bob", "announce: alice", "report: bob says alice served", "logout: alice"] {
            #expect(tracker.log.contains(event), "no log line for \(event)")
        }
        alice.close()
        bob.close()
        await tracker.stopAndRemove()
    }

    /// User names are unique; bad names and passwords are refused with a clear code.
    @Test(arguments: TestStore.allCases) func namesAndPasswords(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let client = try await tracker.connect()
        try await client.register("maria", "one")
        #expect(await refusalCode { try await client.register("maria", "two") } == "name_taken")
        for bad in ["a/b", "..", "nul\0", "bell\u{7}", String(repeating: "u", count: 300), ""] {
            #expect(await refusalCode { try await client.register(bad, "pw") } == "invalid_name", "\(bad.debugDescription)")
        }
        #expect(await refusalCode { try await client.register("nikos", "") } == "bad_request")
        #expect(await refusalCode { _ = try await client.login("maria", "wrong") } == "bad_credentials")
        #expect(await refusalCode { _ = try await client.login("nobody", "x") } == "bad_credentials")
        #expect(await refusalCode { _ = try await client.login("maria", "one", port: 70_000) } == "bad_request")
        let token = try await client.login("maria", "one")
        let huge = String(repeating: "f", count: 300)
        for bad in ["a/b", "..", ".hidden", "x\0y", "tab\t", huge] {
            #expect(await refusalCode { try await client.announce(token, [(bad, sampleManifest(4))]) } == "invalid_name", "\(bad.debugDescription)")
        }
        #expect(await refusalCode { _ = try await client.details(token, name: "../../etc/passwd") } == "invalid_name")
        #expect(await refusalCode { _ = try await client.details(token, name: "missing.txt") } == "not_found")
        client.close()
        await tracker.stopAndRemove()
    }

    /// Requests without a session, with a made-up token, or with another connection's token are refused.
    @Test(arguments: TestStore.allCases) func tokensAreChecked(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let one = try await tracker.connect()
        let two = try await tracker.connect()
        let token = try await one.signUp("eleni")
        #expect(await refusalCode { _ = try await two.list("") } == "not_logged_in")
        #expect(await refusalCode { _ = try await two.list(String(repeating: "0", count: 64)) } == "not_logged_in")
        #expect(await refusalCode { _ = try await two.list(token) } == "not_logged_in", "a token works only on its own connection")
        #expect(try await one.list(token).isEmpty)
        one.close()
        two.close()
        await tracker.stopAndRemove()
    }

    /// After a restart on the same database accounts and counters are kept, sessions are gone.
    @Test(arguments: TestStore.allCases) func restartKeepsAccounts(store: TestStore) async throws {
        let directory = try TemporaryDirectory("shoal-restart")
        let first = try await TestTracker.start(directory: directory, store: store)
        let holder = try await first.connect()
        let downloader = try await first.connect()
        let holderToken = try await holder.signUp("holder")
        let downloaderToken = try await downloader.signUp("downloader")
        let m = sampleManifest(5)
        try await holder.announce(holderToken, [("f", m)])
        let id = try await downloader.details(downloaderToken, name: "f").first?.downloadID
        _ = try await downloader.request(.report(Report(token: downloaderToken, contentID: m.contentID, holder: "holder", outcome: .success, bytes: 40_000, downloadID: id)))
        holder.close()
        downloader.close()
        await first.stop()

        let second = try await TestTracker.start(directory: directory, store: store)
        let client = try await second.connect()
        #expect(await refusalCode { _ = try await client.list(holderToken) } == "not_logged_in")
        let token = try await client.login("holder", "secret-of-holder")
        let status = try await client.status(operatorToken: second.operatorToken)
        #expect(status.registered == 2)
        #expect(status.connected == 1)
        #expect(status.files.isEmpty)
        #expect(status.peers.first { $0.user == "holder" }?.countDownloads == 1)
        #expect(status.peers.first { $0.user == "holder" }?.bytesServed == 40_000)
        #expect(try await client.list(token).isEmpty)
        client.close()
        await second.stopAndRemove()
    }

    /// A peer that stops answering CheckActive is dropped with its holdings; one that answers stays.
    @Test(arguments: TestStore.allCases) func deadPeerIsDropped(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store) { configuration in
            // Generous: the whole suite runs in parallel on two cores, and a
            // starved test process must not look dead to the tracker (a CI run
            // once left the idle live client unanswering for over 5 s). The dead
            // one is still dropped within 12 s, well inside the 30 s waited.
            configuration.probeInterval = 2
            configuration.probeTimeout = 10
        }
        let started = ContinuousClock.now
        func step<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
            do { return try await body() } catch {
                Issue.record("\(what) failed after \(ContinuousClock.now - started): \(error); log: \(tracker.log.all.joined(separator: " | "))")
                throw error
            }
        }
        let dead = try await step("dead connect") { try await tracker.connect() }
        let alive = try await step("alive connect") { try await tracker.connect() }
        let deadToken = try await step("dead signUp") { try await dead.signUp("dead") }
        let aliveToken = try await step("alive signUp") { try await alive.signUp("alive") }
        _ = try await step("dead announce") { try await dead.announce(deadToken, [("dead.txt", sampleManifest(6))]) }
        _ = try await step("alive announce") { try await alive.announce(aliveToken, [("alive.txt", sampleManifest(7))]) }
        #expect(try await step("list") { try await alive.list(aliveToken).count } == 2)
        // From now on the first peer plays dead: connected, but silent.
        dead.stopAnsweringProbes()

        var names: [String] = []
        for _ in 0..<300 {
            try await Task.sleep(for: .milliseconds(100))
            do {
                names = try await alive.list(aliveToken).map(\.name)
            } catch {
                Issue.record("alive lost: \(error); log: \(tracker.log.all.joined(separator: " | "))")
                throw error
            }
            if names == ["alive.txt"] { break }
        }
        #expect(names == ["alive.txt"])
        await dead.closed()
        #expect(!dead.isOpen)
        #expect(tracker.log.contains("did not answer CheckActive"))
        #expect(tracker.log.contains("disconnect: dead stopped answering CheckActive; its 1 file withdrawn"))
        #expect(try await step("status") { try await alive.status(operatorToken: tracker.operatorToken).connected } == 1)
        alive.close()
        await tracker.stopAndRemove()
    }

    /// Logging in again elsewhere closes the old connection and withdraws its files.
    @Test(arguments: TestStore.allCases) func loginElsewhereReplacesSession(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let first = try await tracker.connect()
        let token = try await first.signUp("sofia")
        try await first.announce(token, [("a", sampleManifest(8))])
        let second = try await tracker.connect()
        let newToken = try await second.login("sofia", "secret-of-sofia")
        await first.closed()
        #expect(try await second.list(newToken).isEmpty)
        #expect(try await second.status(operatorToken: tracker.operatorToken).connected == 1)
        second.close()
        await tracker.stopAndRemove()
    }

    /// Repeated failed logins for one name are slowed down.
    @Test(arguments: TestStore.allCases) func failedLoginsAreSlowed(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store) { $0.loginThrottle = LoginThrottle(baseDelay: 120) }
        let client = try await tracker.connect()
        try await client.register("target", "right")
        for _ in 0..<5 {
            #expect(await refusalCode { _ = try await client.login("target", "guess") } == "bad_credentials")
        }
        #expect(await refusalCode { _ = try await client.login("target", "right") } == "too_many_attempts")
        // Other names are not affected.
        try await client.register("other", "pw")
        _ = try await client.login("other", "pw")
        #expect(tracker.log.contains("throttled"))
        client.close()
        await tracker.stopAndRemove()
    }
}
