#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import ShoalCore
import ShoalNet
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Synchronization
import Testing

/// Several tracker instances on one PostgreSQL database serve one swarm:
/// each mirrors the others' sessions through the change feed
/// (LISTEN/NOTIFY) and a periodic full read, renews its own leases, and
/// expires those of instances that died. Real trackers on loopback, one
/// real database each test; waits poll the other instance with a deadline.
@Suite("Several tracker instances", .timeLimit(.minutes(3)))
struct InstanceSyncTests {
    let logger = Logger(label: "shoal.test.instances")

    /// Two trackers on one database (their operator tokens in separate files).
    private func twoInstances(_ directory: TemporaryDirectory, _ configure: @escaping (inout TrackerConfiguration) -> Void = { _ in })
        async throws -> (TestTracker, TestTracker) {
        let a = try await TestTracker.start(directory: directory, store: .postgres, configure)
        let b = try await TestTracker.start(directory: directory, store: .postgres) {
            $0.operatorTokenPath = directory.file("b-operator-token")
            configure(&$0)
        }
        return (a, b)
    }

    /// A peer logged in on A is listed and detailed on B, with its chunk
    /// map and its updates; its token is no good on B; its logout on A
    /// removes it from B. Prints how long a new file took to be listed on B.
    @Test func aPeerOnOneInstanceIsSeenOnTheOther() async throws {
        let directory = try TemporaryDirectory("shoal-instances-seen")
        let (a, b) = try await twoInstances(directory)
        let seeder = try await a.connect()
        let seederToken = try await seeder.signUp("seeder", port: 7001)
        let viewer = try await b.connect()
        let viewerToken = try await viewer.signUp("viewer", port: 0)

        let whole = sampleManifest(1)
        let part = sampleManifest(2, chunks: 50)
        var map = ChunkMap(count: 50)
        map.insert(0)
        let started = ContinuousClock.now
        _ = try await seeder.request(.announce(Announce(token: seederToken, replace: true, files: [
            AnnouncedFile(name: "whole.bin", contentID: whole.contentID, manifest: ManifestPayload(whole)),
            AnnouncedFile(name: "part.bin", contentID: part.contentID, manifest: ManifestPayload(part), chunks: map.base64),
        ])))
        try await eventually("both files listed on B") { try await viewer.list(viewerToken).map(\.name) == ["part.bin", "whole.bin"] }
        print("instances: a new file announced on A was listed on B after \(ContinuousClock.now - started)")

        let holder = try #require(try await viewer.details(viewerToken, name: "whole.bin").first?.holders.first)
        #expect(holder.user == "seeder" && holder.host == "127.0.0.1" && holder.port == 7001 && holder.chunks == nil)
        let partial = try #require(try await viewer.details(viewerToken, name: "part.bin").first?.holders.first)
        #expect(partial.chunks == map.base64)
        let firstVersion = try #require(partial.mapVersion)
        let status = try await b.connect().status(operatorToken: b.operatorToken)
        #expect(status.connected == 2, "B counts A's peer as connected")
        #expect(status.files.map(\.name) == ["part.bin", "whole.bin"])

        // A chunk gained on A reaches B, with a newer tracker-wide version.
        _ = try await seeder.request(.announce(Announce(token: seederToken, replace: false, files: [
            AnnouncedFile(name: "part.bin", contentID: part.contentID, have: [7]),
        ])))
        var expected = map
        expected.insert(7)
        try await eventually("the new chunk shown on B") {
            try await viewer.details(viewerToken, name: "part.bin").first?.holders.first?.chunks == expected.base64
        }
        let newer = try #require(try await viewer.details(viewerToken, name: "part.bin").first?.holders.first?.mapVersion)
        #expect(newer > firstVersion)

        // A's session is A's: B takes no request with its token.
        let intruder = try await b.connect()
        #expect(await refusalCode { _ = try await intruder.list(seederToken) } == "not_logged_in")

        _ = try await seeder.request(.logout(Logout(token: seederToken)))
        try await eventually("the seeder gone from B") { try await viewer.list(viewerToken).isEmpty }
        #expect(try await b.connect().status(operatorToken: b.operatorToken).connected == 1)
        for connection in [seeder, viewer, intruder] { connection.close() }
        await a.stop()
        await b.stopAndRemove()
    }

    /// Twenty files announced one by one on A each get listed on B; prints
    /// how long each took (a figure, not a check: timing depends on the machine's load).
    @Test func newFilesReachTheOtherInstance() async throws {
        let directory = try TemporaryDirectory("shoal-instances-latency")
        let (a, b) = try await twoInstances(directory)
        let seeder = try await a.connect()
        let seederToken = try await seeder.signUp("seeder", port: 7001)
        let viewer = try await b.connect()
        let viewerToken = try await viewer.signUp("viewer", port: 0)
        var delays: [Duration] = [], replies: [Duration] = []
        for index in 0..<20 {
            let started = ContinuousClock.now
            try await seeder.announce(seederToken, [("file\(index).bin", sampleManifest(UInt8(40 + index)))], replace: false)
            replies.append(ContinuousClock.now - started)
            try await eventually("file\(index).bin listed on B", poll: .milliseconds(2)) { try await viewer.list(viewerToken).count == index + 1 }
            delays.append(ContinuousClock.now - started)
        }
        func figures(_ values: [Duration]) -> String {
            let sorted = values.sorted()
            return "min \(sorted.first!), median \(sorted[10]), max \(sorted.last!)"
        }
        print("instances: 20 files announced on A, each listed on B after \(figures(delays)) (from the announce; its reply alone: \(figures(replies)))")
        seeder.close()
        viewer.close()
        await a.stop()
        await b.stopAndRemove()
    }

    /// A user that logs in to serve on B while its serving session lives on
    /// A (a peer moving to another instance, or the same name started twice)
    /// replaces it at once, even before B has heard of it: A closes the old
    /// connection, and both instances show only the new session.
    @Test func aServingLoginOnOneInstanceReplacesTheSessionOnTheOther() async throws {
        let directory = try TemporaryDirectory("shoal-instances-replace")
        let (a, b) = try await twoInstances(directory)
        let old = try await a.connect()
        let oldToken = try await old.signUp("mover", port: 7001)
        try await old.announce(oldToken, [("old.bin", sampleManifest(9))])
        // At once on B: B may not have mirrored the old session yet.
        let new = try await b.connect()
        let newToken = try await new.login("mover", "secret-of-mover", port: 7002)
        try await eventually("A closed the old connection") { !old.isOpen }
        let viewers = [try await a.connect(), try await b.connect()]
        for (index, viewer) in viewers.enumerated() {
            let token = try await viewer.signUp("viewer\(index)", port: 0)
            try await eventually("instance \(index) shows only the new session") {
                let status = try await viewer.status(operatorToken: index == 0 ? a.operatorToken : b.operatorToken)
                let movers = status.peers.filter { $0.user == "mover" && $0.connected }
                return try await viewer.list(token).isEmpty && movers.count == 1 && movers[0].port == 7002
            }
        }
        try await new.announce(newToken, [("new.bin", sampleManifest(10))])
        for viewer in viewers { viewer.close() }
        new.close()
        await a.stop()
        await b.stopAndRemove()
    }

    /// A login on B that replaces A's session (mirrored on B) is in B's
    /// registry while B is still closing the old one in the store: a full
    /// read made then (here: while another transaction holds the old
    /// session's row, so the closing waits) must not take the new session
    /// for one deleted from the store and close it.
    @Test func aFullReadDuringAReplacingLoginKeepsTheNewSession() async throws {
        let directory = try TemporaryDirectory("shoal-instances-replacing")
        let reads = ReadCounter()
        let a = try await TestTracker.start(directory: directory, store: .postgres)
        let b = try await TestTracker.start(directory: directory, store: .postgres) {
            $0.operatorTokenPath = directory.file("b-operator-token")
            $0.resyncInterval = 0.05
            $0.storeTiming = { operation, _, _ in if operation == .remoteSessions { reads.count.add(1, ordering: .relaxed) } }
        }
        let postgres = try #require(b.postgres)
        let old = try await a.connect()
        let oldToken = try await old.signUp("mover", port: 7001)
        try await old.announce(oldToken, [("old.bin", sampleManifest(14))])
        let viewer = try await b.connect()
        let viewerToken = try await viewer.signUp("viewer", port: 0)
        try await eventually("B mirrors the old session") { try await viewer.list(viewerToken).map(\.name) == ["old.bin"] }

        let held = directory.file("row-held")
        let lock = try HeldRowLock(cluster: postgres.cluster, database: postgres.database,
                                   select: "SELECT 1 FROM session WHERE token = '\(oldToken)'", signal: held)
        try await eventually("the old session's row locked") { FileManager.default.fileExists(atPath: held) }
        let new = try await b.connect()
        let login = Task { try await new.login("mover", "secret-of-mover", port: 7002) }
        // The login waits on the lock; let two full reads of B pass meanwhile.
        try await eventually("B's login waiting on the lock") {
            try await postgres.cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = '\(postgres.database)'")
                .trimmingCharacters(in: .whitespacesAndNewlines) != "0"
        }
        let before = reads.count.load(ordering: .relaxed)
        try await eventually("two full reads on B") { reads.count.load(ordering: .relaxed) >= before + 2 }
        lock.release()
        let newToken = try await login.value
        try await new.announce(newToken, [("new.bin", sampleManifest(15))])
        #expect(new.isOpen)
        try await eventually("B lists the new session's file") { try await viewer.list(viewerToken).map(\.name) == ["new.bin"] }
        #expect(!b.log.contains("gone from the shared store"), "\(b.log.all.filter { $0.contains("gone") })")
        for connection in [old, viewer, new] { connection.close() }
        await a.stop()
        await b.stopAndRemove()
    }

    /// In the store itself, a serving session displaces the same user's
    /// other serving sessions, whichever store client wrote them; a tool's
    /// session (port 0) neither displaces nor is displaced.
    @Test func oneServingSessionPerUserInTheStore() async throws {
        let cluster = try await PostgresCluster.shared()
        let address = try await cluster.newDatabase()
        let first = try await PostgresTrackerStore.open(address, instance: "a", logger: logger)
        let second = try await PostgresTrackerStore.open(address, instance: "b", logger: logger)
        func session(_ token: String, _ instance: String, port: Int) -> StoredSession {
            StoredSession(token: SessionToken(value: token), instance: instance, user: "mover", host: "127.0.0.1", port: port, keyFingerprint: nil,
                          leaseExpiry: 1e12)
        }
        let m = sampleManifest(12)
        try await first.sessionOpened(session("on-a", "a", port: 7001))
        try await first.holdingsChanged(SessionToken(value: "on-a"), .init(files: 1, changed: [
            m.contentID: TrackerRegistry.Holding(names: [try FileName("m.bin")], chunks: ChunkMap(count: m.chunkCount, full: true), version: 1),
        ], withdrawn: [], newContents: [m.contentID]), contents: [StoredContent(manifest: m, firstSharedBy: "mover", since: 1)])
        try await first.sessionOpened(session("tool", "a", port: 0))
        try await second.sessionOpened(session("on-b", "b", port: 7002))
        let stored = try await second.liveRegistry()
        #expect(Set(stored.sessions.keys.map(\.value)) == ["on-b", "tool"])
        #expect(stored.holdings.isEmpty && stored.contents.isEmpty, "the displaced session's holdings and its content went with it")
        await first.close()
        await second.close()
        try await cluster.drop(address.database)
    }

    /// A session of this instance deleted from the store without a
    /// notification reaching it (here: by hand) is found missing by the
    /// next full read, and its connection is closed so the peer logs in again.
    @Test func aSessionGoneFromTheStoreEndsAtTheNextFullRead() async throws {
        let directory = try TemporaryDirectory("shoal-instances-gone")
        let tracker = try await TestTracker.start(directory: directory, store: .postgres) { $0.resyncInterval = 0.3 }
        let postgres = try #require(tracker.postgres)
        let peer = try await tracker.connect()
        let token = try await peer.signUp("vanished", port: 7001)
        try await peer.announce(token, [("v.bin", sampleManifest(13))])
        _ = try await postgres.cluster.sql("DELETE FROM holding; DELETE FROM session", database: postgres.database)
        try await eventually("the connection closed") { !peer.isOpen }
        #expect(tracker.log.contains("gone from the shared store"))
        await tracker.stopAndRemove()
    }

    /// Forty seeders, half on each instance, announce at once, then half of
    /// them leave at once: both instances converge on the same list, with
    /// every file's holder, and on the same number of connected peers.
    @Test func bothInstancesConvergeUnderConcurrentChanges() async throws {
        let directory = try TemporaryDirectory("shoal-instances-converge")
        let (a, b) = try await twoInstances(directory)
        var seeders: [(FramedConnection, String)] = []
        for index in 0..<40 {
            let connection = try await (index % 2 == 0 ? a : b).connect()
            seeders.append((connection, try await connection.signUp("seeder\(index)", port: 7000 + index)))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, (connection, token)) in seeders.enumerated() {
                group.addTask {
                    try await connection.announce(token, [("own\(index).bin", sampleManifest(UInt8(index))),
                                                          ("shared.bin", sampleManifest(200))])
                }
            }
            try await group.waitForAll()
        }
        let viewers = [try await a.connect(), try await b.connect()]
        var viewerTokens: [String] = []
        for (index, viewer) in viewers.enumerated() { viewerTokens.append(try await viewer.signUp("viewer\(index)", port: 0)) }
        func converged(to seeding: Int) async throws -> Bool {
            for (viewer, token) in zip(viewers, viewerTokens) {
                let rows = try await viewer.list(token)
                guard rows.count == seeding + 1, rows.first(where: { $0.name == "shared.bin" })?.holders == seeding,
                      rows.filter({ $0.name != "shared.bin" }).allSatisfy({ $0.holders == 1 }) else { return false }
            }
            let counts = [try await viewers[0].status(operatorToken: a.operatorToken).connected,
                          try await viewers[1].status(operatorToken: b.operatorToken).connected]
            return counts == [seeding + 2, seeding + 2]
        }
        try await eventually("both instances list 40 seeders") { try await converged(to: 40) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (connection, token) in seeders.prefix(20) {
                group.addTask { _ = try await connection.request(.logout(Logout(token: token))) }
            }
            try await group.waitForAll()
        }
        try await eventually("both instances list the 20 left") { try await converged(to: 20) }
        for (connection, _) in seeders { connection.close() }
        for viewer in viewers { viewer.close() }
        await a.stop()
        await b.stopAndRemove()
    }

    /// A starting instance serves the others' sessions from its first request.
    @Test func aNewInstanceLoadsTheOthers() async throws {
        let directory = try TemporaryDirectory("shoal-instances-load")
        let a = try await TestTracker.start(directory: directory, store: .postgres)
        let seeder = try await a.connect()
        let token = try await seeder.signUp("seeder", port: 7001)
        try await seeder.announce(token, [("early.bin", sampleManifest(3))])
        let b = try await TestTracker.start(directory: directory, store: .postgres) { $0.operatorTokenPath = directory.file("b-operator-token") }
        let viewer = try await b.connect()
        let viewerToken = try await viewer.signUp("viewer", port: 0)
        #expect(try await viewer.list(viewerToken).map(\.name) == ["early.bin"])
        #expect(try await viewer.details(viewerToken, name: "early.bin").first?.holders.map(\.user) == ["seeder"])
        seeder.close()
        viewer.close()
        await a.stop()
        await b.stopAndRemove()
    }

    /// A report taken on B about a holder connected to A moves the counters
    /// A shows for it. A download id is good only on the instance that gave
    /// it: the same report sent to A is refused, and says so.
    @Test func aReportOnOneInstanceMovesTheCountersTheOtherShows() async throws {
        let directory = try TemporaryDirectory("shoal-instances-report")
        let (a, b) = try await twoInstances(directory)
        let m = sampleManifest(4)
        let holder = try await a.connect()
        let holderToken = try await holder.signUp("holder", port: 7001)
        try await holder.announce(holderToken, [("f.bin", m)])
        let downloader = try await b.connect()
        let downloaderToken = try await downloader.signUp("downloader", port: 0)
        try await eventually("the holder listed on B") { try await !downloader.details(downloaderToken, name: "f.bin").isEmpty }
        let detail = try #require(try await downloader.details(downloaderToken, name: "f.bin").first)

        // The same account on A, with B's download id: refused, with the reason.
        let onA = try await a.connect()
        let onAToken = try await onA.login("downloader", "secret-of-downloader", port: 0)
        let message = await refusalMessage {
            _ = try await onA.request(.report(Report(token: onAToken, contentID: m.contentID, holder: "holder", outcome: .success,
                                                     bytes: 40_000, downloadID: detail.downloadID)))
        }
        #expect(message?.contains("valid only on the tracker instance that gave it") == true, "\(message ?? "accepted")")

        guard case let .reported(reply) = try await downloader.request(.report(Report(token: downloaderToken, contentID: m.contentID, holder: "holder",
                                                                                       outcome: .success, bytes: 40_000, downloadID: detail.downloadID))) else {
            Issue.record("no reported reply")
            return
        }
        #expect(reply.countDownloads == 1)
        let watcher = try await a.connect()
        let watcherToken = try await watcher.signUp("watcher", port: 0)
        try await eventually("A shows the report taken on B") {
            let shown = try await watcher.details(watcherToken, name: "f.bin").first?.holders.first
            return shown?.countDownloads == 1 && shown?.bytesServed == 40_000
        }
        for connection in [holder, downloader, onA, watcher] { connection.close() }
        await a.stop()
        await b.stopAndRemove()
    }

    /// Twelve downloaders, half on each instance, report about one holder
    /// at once, each report sent twice at once: each (reporter, holder,
    /// content) is taken once, and both instances end up showing exactly 12 downloads.
    @Test func racingReportsOnTwoInstancesKeepCountersExact() async throws {
        let directory = try TemporaryDirectory("shoal-instances-race")
        let (a, b) = try await twoInstances(directory)
        let m = sampleManifest(5)
        let holder = try await a.connect()
        let holderToken = try await holder.signUp("holder", port: 7001)
        try await holder.announce(holderToken, [("f.bin", m)])
        var reporters: [(FramedConnection, String, String?)] = []
        for index in 0..<12 {
            let connection = try await (index % 2 == 0 ? a : b).connect()
            let token = try await connection.signUp("reporter\(index)", port: 0)
            try await eventually("the holder listed to reporter\(index)") { try await !connection.details(token, name: "f.bin").isEmpty }
            reporters.append((connection, token, try await connection.details(token, name: "f.bin").first?.downloadID))
        }
        let codes = await withTaskGroup(of: String?.self) { group in
            for (connection, token, id) in reporters {
                for _ in 0..<2 {
                    group.addTask {
                        await refusalCode {
                            _ = try await connection.request(.report(Report(token: token, contentID: m.contentID, holder: "holder", outcome: .success,
                                                                            bytes: 1000, downloadID: id)))
                        }
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(codes.filter { $0 == nil }.count == 12)
        #expect(codes.filter { $0 == "not_allowed" }.count == 12)
        for (tracker, viewer) in [(a, reporters[0]), (b, reporters[1])] {
            try await eventually("\(tracker === a ? "A" : "B") shows 12 downloads") {
                let shown = try await viewer.0.details(viewer.1, name: "f.bin").first?.holders.first
                return shown?.countDownloads == 12 && shown?.bytesServed == 12_000
            }
        }
        holder.close()
        for (connection, _, _) in reporters { connection.close() }
        await a.stop()
        await b.stopAndRemove()
    }

    /// `shoal tracker --db postgres://… --lease-seconds 3` killed with
    /// SIGKILL: its sessions vanish from the other instance's list and
    /// details once their lease runs out. Prints how long that took. (3 s,
    /// not less: a test process starved by a parallel run must not miss
    /// its renewals before the kill.)
    @Test func aKilledInstancesSessionsExpireOnTheOther() async throws {
        let directory = try TemporaryDirectory("shoal-instances-kill")
        let b = try await TestTracker.start(directory: directory, store: .postgres)
        let postgres = try #require(b.postgres)
        let killed = try ShoalProcess(["tracker", "--port", "0", "--db", postgres.cluster.tcpURL(of: postgres.database), "--password-rounds", "1000",
                                       "--insecure", "--lease-seconds", "3", "--token-file", directory.file("a-token")],
                                      currentDirectory: directory.path)
        let line = try await killed.waitForLine { $0.hasPrefix("listening on") }
        let port = try #require(line.flatMap(ShoalProcess.port(fromListeningLine:)), "stderr: \(killed.errors)")
        let seeder = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", security: .plain)
        let seederToken = try await seeder.signUp("seeder", port: 7001)
        try await seeder.announce(seederToken, [("doomed.bin", sampleManifest(6))])
        let viewer = try await b.connect()
        let viewerToken = try await viewer.signUp("viewer", port: 0)
        try await eventually("the killed instance's file listed on B") { try await viewer.list(viewerToken).map(\.name) == ["doomed.bin"] }

        #expect(try await killed.stop(signal: SIGKILL) != nil)
        let killedAt = ContinuousClock.now
        try await eventually("the killed instance's sessions gone from B", timeout: .seconds(30)) {
            try await viewer.list(viewerToken).isEmpty
        }
        print("instances: the sessions of an instance killed with SIGKILL (lease 3 s) left the other one after \(ContinuousClock.now - killedAt)")
        #expect(await refusalCode { _ = try await viewer.details(viewerToken, name: "doomed.bin") } == "not_found")
        #expect(try await b.connect().status(operatorToken: b.operatorToken).connected == 1)
        seeder.close()
        viewer.close()
        await b.stopAndRemove()
    }

    /// The listening connection dropped (the server ends it): the instance
    /// listens again and reads everything again, so a change made after is seen.
    @Test func listeningResumesAfterTheConnectionDrops() async throws {
        let directory = try TemporaryDirectory("shoal-instances-relisten")
        // No periodic full read in this test: only the feed can bring the change.
        let (a, b) = try await twoInstances(directory) { $0.resyncInterval = 600 }
        let postgres = try #require(b.postgres)
        let viewer = try await b.connect()
        let viewerToken = try await viewer.signUp("viewer", port: 0)
        let ended = try await postgres.cluster.sql("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'shoal-listen' AND datname = '\(postgres.database)'
            """)
        #expect(ended.trimmingCharacters(in: .whitespacesAndNewlines) == "2", "both instances' listening connections")
        try await eventually("B noticed") { b.log.contains("listening again") }
        let seeder = try await a.connect()
        let token = try await seeder.signUp("seeder", port: 7001)
        try await seeder.announce(token, [("after.bin", sampleManifest(7))])
        try await eventually("the file announced after the drop listed on B") { try await viewer.list(viewerToken).map(\.name) == ["after.bin"] }
        seeder.close()
        viewer.close()
        await a.stop()
        await b.stopAndRemove()
    }

    /// One instance deletes a content as its last holder there leaves while
    /// another inserts a holding of it, many rounds: no write fails, and the
    /// content is stored exactly while someone holds it.
    @Test func contentDeletedOnOneStoreWhileHeldOnAnother() async throws {
        let cluster = try await PostgresCluster.shared()
        let address = try await cluster.newDatabase()
        let log = CapturedLog()
        let first = try await PostgresTrackerStore.open(address, instance: "a", logger: log.logger(label: "a"))
        let second = try await PostgresTrackerStore.open(address, instance: "b", logger: log.logger(label: "b"))
        let m = sampleManifest(8)
        let content = StoredContent(manifest: m, firstSharedBy: "u", since: 1)
        let full = TrackerRegistry.Holding(names: [try FileName("raced.bin")], chunks: ChunkMap(count: m.chunkCount, full: true), version: 1)
        for round in 0..<60 {
            let leaving = SessionToken(value: "leaving\(round)"), joining = SessionToken(value: "joining\(round)")
            try await first.sessionOpened(StoredSession(token: leaving, instance: "a", user: "u1", host: "127.0.0.1", port: 7000, keyFingerprint: nil, leaseExpiry: 1e12))
            try await first.holdingsChanged(leaving, .init(files: 1, changed: [m.contentID: full], withdrawn: [], newContents: [m.contentID]), contents: [content])
            try await second.sessionOpened(StoredSession(token: joining, instance: "b", user: "u2", host: "127.0.0.1", port: 7000, keyFingerprint: nil, leaseExpiry: 1e12))
            // B knows the content (from A's holder), so it is not new to B.
            async let left: Void = first.sessionClosed(leaving)
            async let joined: Void = second.holdingsChanged(joining, .init(files: 1, changed: [m.contentID: full], withdrawn: [], newContents: []),
                                                            contents: [content])
            try await left
            try await joined
            let stored = try await first.liveRegistry()
            #expect(stored.contents.keys.map { $0 } == [m.contentID], "round \(round): the content stays while B holds it")
            #expect(stored.holdings[joining]?[m.contentID] == full, "round \(round)")
            try await second.sessionClosed(joining)
            #expect(try await second.liveRegistry().contents.isEmpty, "round \(round): gone with its last holder")
        }
        let retries = log.all.filter { $0.contains("lost a race") }.count
        print("instances: 60 racing delete/insert rounds on two stores, \(retries) statement\(retries == 1 ? "" : "s") retried after losing the race")
        await first.close()
        await second.close()
        try await cluster.drop(address.database)
    }

    /// Chunk-map versions come from one sequence: blocks two stores take never overlap.
    @Test func mapVersionBlocksAreTrackerWide() async throws {
        let cluster = try await PostgresCluster.shared()
        let address = try await cluster.newDatabase()
        let first = try await PostgresTrackerStore.open(address, logger: logger)
        let second = try await PostgresTrackerStore.open(address, logger: logger)
        var blocks: [Range<UInt64>] = []
        for store in [first, second, first, second] { blocks += try await store.mapVersions(atLeast: 5000) }
        #expect(blocks.reduce(0) { $0 + $1.count } >= 4 * 5000)
        let sorted = blocks.sorted { $0.lowerBound < $1.lowerBound }
        for (earlier, later) in zip(sorted, sorted.dropFirst()) { #expect(earlier.upperBound <= later.lowerBound) }
        #expect(sorted.first!.lowerBound >= 1)
        await first.close()
        await second.close()
        try await cluster.drop(address.database)
    }

    /// The change notifications' payloads: parsed back as sent, junk refused.
    @Test func changePayloads() {
        let change = StoreChange(kind: .counters, writer: "3f2a", key: "maria")
        #expect(StoreChange(payload: change.payload) == change)
        #expect(StoreChange(payload: "session w abc")?.token == SessionToken(value: "abc"))
        #expect(StoreChange(payload: "renamed w abc") == nil)
        #expect(StoreChange(payload: "session w") == nil)
    }
}

/// Counts the full reads a tracker's store makes.
final class ReadCounter: Sendable {
    let count = Atomic<Int>(0)
}

/// A psql session that holds `FOR UPDATE` on the rows of `select` until
/// released: another client's transaction, making writers of those rows
/// wait. It touches `signal` once it holds them.
final class HeldRowLock: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()

    init(cluster: PostgresCluster, database: String, select: String, signal: String) throws {
        process.executableURL = URL(fileURLWithPath: cluster.binaries + "/psql")
        process.arguments = ["-X", "-q", "-h", cluster.socketDirectory, "-p", "\(cluster.port)", "-U", cluster.user, "-d", database]
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data("BEGIN;\n\(select) FOR UPDATE;\n\\! touch \(signal)\n".utf8))
    }

    /// Commits (releasing the rows); psql then ends.
    func release() {
        input.fileHandleForWriting.write(Data("COMMIT;\n".utf8))
        try? input.fileHandleForWriting.close()
    }
}

/// Polls `check` until it holds, failing after `timeout`.
func eventually(_ what: String, timeout: Duration = .seconds(20), poll: Duration = .milliseconds(20),
                _ check: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await check() { return }
        guard ContinuousClock.now < deadline else {
            Issue.record("not within \(timeout): \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: poll)
    }
}
