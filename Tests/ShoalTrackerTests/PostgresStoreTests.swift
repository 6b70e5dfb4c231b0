import Foundation
import Logging
import ShoalCore
import ShoalNet
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// What only a shared store must guarantee: several tracker instances (and
/// several store clients) on one PostgreSQL database keep names unique,
/// counters exact and reports once each, under requests that race; and what
/// a tracker writes of its live registry can be read back by another.
/// Each test has a database of its own in the test process's ``PostgresCluster``.
@Suite("PostgreSQL store", .timeLimit(.minutes(3)))
struct PostgresStoreTests {
    let logger = Logger(label: "shoal.test.store")

    /// Two trackers started on one database (their operator tokens in separate files).
    private func twoInstances(_ directory: TemporaryDirectory) async throws -> (TestTracker, TestTracker) {
        let a = try await TestTracker.start(directory: directory, store: .postgres)
        let b = try await TestTracker.start(directory: directory, store: .postgres) { $0.operatorTokenPath = directory.file("b-operator-token") }
        return (a, b)
    }

    /// A store client of its own on `address`, closed after `body`.
    private func withStore<T>(_ address: PostgresAddress, _ body: (PostgresTrackerStore) async throws -> T) async throws -> T {
        let store = try await PostgresTrackerStore.open(address, logger: logger)
        do {
            let value = try await body(store)
            await store.close()
            return value
        } catch {
            await store.close()
            throw error
        }
    }

    /// The same name registered at the same moment through two tracker
    /// instances: exactly one wins, the other is told the name is taken, and
    /// the winner's password is the one both instances accept.
    @Test func sameNameAtOnceOnTwoInstances() async throws {
        let directory = try TemporaryDirectory("shoal-two-instances")
        let (a, b) = try await twoInstances(directory)
        for round in 0..<12 {
            let name = "racer\(round)"
            let (ca, cb) = (try await a.connect(), try await b.connect())
            async let first = refusalCode { try await ca.register(name, "password-a") }
            async let second = refusalCode { try await cb.register(name, "password-b") }
            let codes = [await first, await second]
            #expect(codes.filter { $0 == nil }.count == 1, "round \(round): \(codes)")
            #expect(codes.filter { $0 == "name_taken" }.count == 1, "round \(round): \(codes)")
            let winner = codes[0] == nil ? "password-a" : "password-b"
            let loser = codes[0] == nil ? "password-b" : "password-a"
            _ = try await ca.login(name, winner, port: 0)
            _ = try await cb.login(name, winner, port: 0)
            #expect(await refusalCode { _ = try await cb.login(name, loser, port: 0) } == "bad_credentials")
            ca.close()
            cb.close()
        }
        #expect(try await a.connect().status(operatorToken: a.operatorToken).registered == 12)
        await a.stop()
        await b.stopAndRemove()
    }

    /// Many store clients (as many tracker instances would have) create the
    /// same 20 names at once: each name exists once, and every other attempt
    /// fails as taken.
    @Test func uniqueNamesUnderConcurrentCreates() async throws {
        let cluster = try await PostgresCluster.shared()
        let address = try await cluster.newDatabase()
        let stores = try await [PostgresTrackerStore.open(address, logger: logger), PostgresTrackerStore.open(address, logger: logger),
                                PostgresTrackerStore.open(address, logger: logger)]
        let outcomes = await withTaskGroup(of: String.self) { group in
            for name in 0..<20 {
                for (index, store) in stores.enumerated() {
                    for attempt in 0..<2 {
                        group.addTask {
                            do {
                                try await store.createAccount(Account(user: "user\(name)", passwordHash: "hash-\(index)-\(attempt)"))
                                return "created"
                            } catch let error as TrackerError where error == .nameTaken("user\(name)") {
                                return "taken"
                            } catch {
                                return "\(error)"
                            }
                        }
                    }
                }
            }
            var outcomes: [String] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        #expect(outcomes.filter { $0 == "created" }.count == 20)
        #expect(outcomes.filter { $0 == "taken" }.count == 20 * 5)
        #expect(try await stores[0].accountCount() == 20)
        for store in stores { await store.close() }
        try await cluster.drop(address.database)
    }

    /// Reports about one holder race in from 40 reporters through three
    /// store clients, each report sent three times at once: every
    /// (reporter, holder, content) is taken once, and the counters are
    /// exact: 24 successes add 24 downloads and their bytes; 16 first
    /// failures from reporters without a record add 16 / 8 = 2 failures.
    @Test func racingReportsKeepCountersExact() async throws {
        let cluster = try await PostgresCluster.shared()
        let address = try await cluster.newDatabase()
        let stores = try await [PostgresTrackerStore.open(address, logger: logger), PostgresTrackerStore.open(address, logger: logger),
                                PostgresTrackerStore.open(address, logger: logger)]
        try await stores[0].createAccount(Account(user: "holder", passwordHash: "h"))
        let rule = ReputationRule(minimumRecordAge: 24 * 3600, minimumVouchers: 3, newcomerFailuresPerCount: 8)
        let outcomes = await withTaskGroup(of: String.self) { group in
            for reporter in 0..<40 {
                let record = ReportRecord(reporter: "reporter\(reporter)", holder: "holder", contentID: "c0ffee", succeeded: reporter < 24,
                                          bytes: 1000, at: Date().timeIntervalSince1970)
                for store in stores {
                    group.addTask {
                        do {
                            _ = try await store.recordReport(record, rule: rule)
                            return "taken"
                        } catch TrackerError.notAllowed {
                            return "refused"
                        } catch {
                            return "\(error)"
                        }
                    }
                }
            }
            var outcomes: [String] = []
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        #expect(outcomes.filter { $0 == "taken" }.count == 40)
        #expect(outcomes.filter { $0 == "refused" }.count == 80)
        let holder = try #require(try await stores[1].account(named: "holder"))
        #expect(holder.countDownloads == 24)
        #expect(holder.bytesServed == 24_000)
        #expect(holder.countFailures == 2)
        for store in stores { await store.close() }
        try await cluster.drop(address.database)
    }

    /// Counters and reports survive the tracker: a report made before a
    /// restart still counts after it, and cannot be made again.
    @Test func countersSurviveARestart() async throws {
        let directory = try TemporaryDirectory("shoal-pg-restart")
        let first = try await TestTracker.start(directory: directory, store: .postgres)
        let holder = try await first.connect()
        let holderToken = try await holder.signUp("holder")
        let m = sampleManifest(7)
        try await holder.announce(holderToken, [("f.bin", m)])
        let downloader = try await first.connect()
        let downloaderToken = try await downloader.signUp("downloader", port: 0)
        let id = try await downloader.details(downloaderToken, name: "f.bin").first?.downloadID
        _ = try await downloader.request(.report(Report(token: downloaderToken, contentID: m.contentID, holder: "holder", outcome: .success,
                                                        bytes: 40_000, downloadID: id)))
        holder.close()
        downloader.close()
        await first.stop()

        let second = try await TestTracker.start(directory: directory, store: .postgres)
        let holderAgain = try await second.connect()
        let again = try await holderAgain.login("holder", "secret-of-holder")
        try await holderAgain.announce(again, [("f.bin", m)])
        let downloaderAgain = try await second.connect()
        let token = try await downloaderAgain.login("downloader", "secret-of-downloader", port: 0)
        let detail = try #require(try await downloaderAgain.details(token, name: "f.bin").first)
        #expect(detail.holders.first?.countDownloads == 1)
        #expect(detail.holders.first?.bytesServed == 40_000)
        let code = await refusalCode {
            _ = try await downloaderAgain.request(.report(Report(token: token, contentID: m.contentID, holder: "holder", outcome: .success,
                                                                 bytes: 40_000, downloadID: detail.downloadID)))
        }
        #expect(code == "not_allowed", "the same report again, after the restart")
        holderAgain.close()
        downloaderAgain.close()
        await second.stopAndRemove()
    }

    /// What a tracker knows of its sessions, holdings, chunk maps and
    /// manifests is in the database, where another client reads it back:
    /// a complete and a partial holder, then a withdrawal and a logout.
    @Test func theLiveRegistryIsStored() async throws {
        let directory = try TemporaryDirectory("shoal-pg-registry")
        let tracker = try await TestTracker.start(directory: directory, store: .postgres)
        let address = try #require(tracker.server.configuration.postgres)
        let big = sampleManifest(3, chunks: 100)
        let small = sampleManifest(4)
        let seeder = try await tracker.connect()
        let seederToken = try await seeder.signUp("seeder", port: 7001)
        try await seeder.announce(seederToken, [("big.bin", big), ("small.bin", small)])
        let leecher = try await tracker.connect()
        let leecherToken = try await leecher.signUp("leecher", port: 7002)
        var partial = ChunkMap(count: 100)
        for index in [0, 5, 99] { partial.insert(index) }
        _ = try await leecher.request(.announce(Announce(token: leecherToken, replace: true, files: [
            AnnouncedFile(name: "big-copy.bin", contentID: big.contentID, chunks: partial.base64),
        ])))
        _ = try await leecher.request(.announce(Announce(token: leecherToken, replace: false, files: [
            AnnouncedFile(name: "big-copy.bin", contentID: big.contentID, have: [6]),
        ])))

        try await withStore(address) { store in
            let stored = try await store.liveRegistry()
            #expect(Set(stored.sessions.values.map(\.user)) == ["seeder", "leecher"])
            #expect(stored.sessions.values.allSatisfy { $0.instance == tracker.server.configuration.instance })
            #expect(stored.sessions[SessionToken(value: seederToken)]?.port == 7001)
            #expect(Set(stored.contents.keys) == [big.contentID, small.contentID])
            #expect(stored.contents[big.contentID]?.manifest == big)
            #expect(stored.contents[big.contentID]?.firstSharedBy == "seeder")
            let seeding = try #require(stored.holdings[SessionToken(value: seederToken)])
            #expect(seeding[big.contentID]?.isComplete == true)
            #expect(seeding[small.contentID]?.names.map(\.value) == ["small.bin"])
            let leeching = try #require(stored.holdings[SessionToken(value: leecherToken)]?[big.contentID])
            #expect(leeching.chunks.indices == [0, 5, 6, 99])
            #expect(leeching.names.map(\.value) == ["big-copy.bin"])
            #expect(leeching.version > 0)
        }

        // The seeder withdraws the small file; the leecher logs out.
        _ = try await seeder.request(.announce(Announce(token: seederToken, replace: false, files: [
            AnnouncedFile(name: "small.bin", contentID: small.contentID, withdrawn: true),
        ])))
        _ = try await leecher.request(.logout(Logout(token: leecherToken)))
        try await withStore(address) { store in
            let stored = try await store.liveRegistry()
            #expect(stored.sessions.values.map(\.user) == ["seeder"])
            #expect(Set(stored.contents.keys) == [big.contentID], "a content nobody holds is forgotten")
            #expect(stored.holdings[SessionToken(value: seederToken)]?.keys.map { $0 } == [big.contentID])
        }
        // A dropped connection ends its session in the store too.
        seeder.close()
        await tracker.stop()
        try await withStore(address) { store in
            let stored = try await store.liveRegistry()
            #expect(stored.sessions.isEmpty)
            #expect(stored.contents.isEmpty)
        }
        leecher.close()
        if let postgres = tracker.postgres { try await postgres.cluster.drop(postgres.database) }
        directory.remove()
    }

    /// Twelve peers announce the same new file at the same moment (as after a
    /// tracker restart): every announce is stored, none is refused for a
    /// manifest the store has not seen yet, and the file goes with the last holder.
    @Test func sameNewContentAnnouncedAtOnce() async throws {
        let directory = try TemporaryDirectory("shoal-pg-same-content")
        let tracker = try await TestTracker.start(directory: directory, store: .postgres)
        let address = try #require(tracker.server.configuration.postgres)
        let m = sampleManifest(11, chunks: 500)
        var peers: [(FramedConnection, String)] = []
        for i in 0..<12 {
            let connection = try await tracker.connect()
            peers.append((connection, try await connection.signUp("peer\(i)", port: 7000 + i)))
        }
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for (connection, token) in peers { group.addTask { try await connection.announce(token, [("same.bin", m)]) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(counts == Array(repeating: 1, count: 12))
        try await withStore(address) { store in
            let stored = try await store.liveRegistry()
            #expect(stored.holdings.count == 12 && stored.holdings.values.allSatisfy { $0.keys.contains(m.contentID) })
            #expect(stored.contents.keys.map { $0 } == [m.contentID])
        }
        for (connection, token) in peers { _ = try await connection.request(.logout(Logout(token: token))) }
        try await withStore(address) { store in
            let stored = try await store.liveRegistry()
            #expect(stored.sessions.isEmpty && stored.contents.isEmpty)
        }
        for (connection, _) in peers { connection.close() }
        await tracker.stopAndRemove()
    }

    /// Leases: renewing pushes the expiry of one instance's sessions only;
    /// expiring deletes the sessions past it with their holdings.
    @Test func leasesRenewAndExpire() async throws {
        let cluster = try await PostgresCluster.shared()
        let address = try await cluster.newDatabase()
        try await withStore(address) { store in
            let m = sampleManifest(9)
            for (token, instance) in [("t1", "a"), ("t2", "a"), ("t3", "b")] {
                try await store.sessionOpened(StoredSession(token: SessionToken(value: token), instance: instance, user: "u-\(token)", host: "127.0.0.1",
                                                            port: 7000, keyFingerprint: nil, leaseExpiry: 100))
            }
            let holding = TrackerRegistry.Holding(names: [try FileName("m.bin")], chunks: ChunkMap(count: m.chunkCount, full: true), version: 1)
            try await store.holdingsChanged(SessionToken(value: "t3"),
                                            TrackerRegistry.AnnounceResult(files: 1, changed: [m.contentID: holding], withdrawn: [], newContents: [m.contentID]),
                                            contents: [StoredContent(manifest: m, firstSharedBy: "u-t3", since: 1)])
            // a renews only what it names as its own: t2 (a row a no longer
            // holds, say its close failed to write) lapses, and b's t3 is not a's to renew.
            #expect(try await store.renewLeases(instance: "a", tokens: [SessionToken(value: "t1"), SessionToken(value: "t3")], until: 200) == 1)
            #expect(try await store.expireSessions(before: 150) == 2)
            let stored = try await store.liveRegistry()
            #expect(Set(stored.sessions.keys.map(\.value)) == ["t1"])
            #expect(stored.holdings.isEmpty && stored.contents.isEmpty, "the expired session's holdings and content went with it")
        }
        try await cluster.drop(address.database)
    }

    /// `shoal tracker --db postgres://…` as a real process, over TCP, and
    /// `--db postgres` with the PG* variables through the Unix socket: both
    /// serve from the same database, where the first one's account is found
    /// by the second.
    @Test func theCommandLineTakesAPostgresDatabase() async throws {
        let cluster = try await PostgresCluster.shared()
        let address = try await cluster.newDatabase()
        let directory = try TemporaryDirectory("shoal-pg-process")
        defer { directory.remove() }
        let first = try ShoalProcess(["tracker", "--port", "0", "--db", cluster.tcpURL(of: address.database), "--password-rounds", "1000",
                                      "--insecure", "--token-file", directory.file("token")], currentDirectory: directory.path)
        let line = try await first.waitForLine { $0.hasPrefix("listening on") }
        let port = try #require(line.flatMap(ShoalProcess.port(fromListeningLine:)), "stderr: \(first.errors)")
        #expect(first.errors.contains("PostgreSQL postgres://postgres@127.0.0.1:\(cluster.port)/\(address.database)"))
        let client = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", security: .plain)
        try await client.register("maria", "pw")
        client.close()
        #expect(try await first.stop() == 0, "stderr: \(first.errors)")

        let second = try ShoalProcess(["tracker", "--port", "0", "--db", "postgres", "--password-rounds", "1000", "--insecure",
                                       "--token-file", directory.file("token")], environment: [
            "PGHOST": cluster.socketDirectory, "PGPORT": "\(cluster.port)", "PGUSER": cluster.user, "PGDATABASE": address.database,
        ], currentDirectory: directory.path)
        let again = try await second.waitForLine { $0.hasPrefix("listening on") }
        let newPort = try #require(again.flatMap(ShoalProcess.port(fromListeningLine:)), "stderr: \(second.errors)")
        #expect(second.errors.contains("socket \(cluster.socketDirectory)/.s.PGSQL.\(cluster.port)"))
        let returning = try await FramedConnection.connect(host: "127.0.0.1", port: newPort, role: "peer", security: .plain)
        _ = try await returning.login("maria", "pw")
        #expect(await refusalCode { try await returning.register("maria", "other") } == "name_taken")
        returning.close()
        #expect(try await second.stop() == 0, "stderr: \(second.errors)")

        // A database that does not exist: a clear error, and exit non-zero.
        let missing = try ShoalProcess(["tracker", "--port", "0", "--db", cluster.tcpURL(of: "no_such_database"), "--insecure",
                                        "--token-file", directory.file("token")], currentDirectory: directory.path)
        #expect(try await missing.waitForExit() != 0)
        #expect(missing.errors.contains("no_such_database"), "stderr: \(missing.errors)")
        try await cluster.drop(address.database)
    }

    /// The cluster finds Debian's newest PostgreSQL, and where there is none
    /// it has nothing to run: the tests then fail with advice naming the package.
    @Test func theClusterFindsPostgres() throws {
        let empty = try TemporaryDirectory("shoal-no-postgres")
        defer { empty.remove() }
        #expect(PostgresCluster.findBinaries(under: empty.path) == nil)
        try FileManager.default.createDirectory(atPath: empty.file("9/bin"), withIntermediateDirectories: true)
        #expect(PostgresCluster.findBinaries(under: empty.path) == nil, "a bin folder without initdb")
        #expect(PostgresCluster.missingAdvice.contains("`postgresql` package"))
        let found = try #require(PostgresCluster.findBinaries(), "\(PostgresCluster.missingAdvice)")
        #expect(FileManager.default.isExecutableFile(atPath: found + "/pg_ctl"))
    }

    /// `--db` values: URLs over TCP and through a socket, and the PG* variables.
    @Test func addresses() throws {
        let environment = ["USER": "me"]
        let tcp = try PostgresAddress(parsing: "postgres://shoal:secret@db.example:6543/swarm", environment: environment)
        #expect(tcp.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(tcp.user == "shoal" && tcp.password == "secret" && tcp.database == "swarm")
        #expect(!tcp.description.contains("secret"))
        let socket = try PostgresAddress(parsing: "postgresql://shoal@/swarm?host=/run/pg&port=5433", environment: environment)
        #expect(socket.endpoint == .socket(path: "/run/pg/.s.PGSQL.5433"))
        let encoded = try PostgresAddress(parsing: "postgres://shoal@%2Frun%2Fpg/swarm", environment: environment)
        #expect(encoded.endpoint == .socket(path: "/run/pg/.s.PGSQL.5432"))
        let fromEnvironment = try PostgresAddress(parsing: "postgres", environment: [
            "PGHOST": "127.0.0.1", "PGPORT": "5999", "PGUSER": "op", "PGDATABASE": "trackers", "PGPASSWORD": "pw",
        ])
        #expect(fromEnvironment == PostgresAddress(endpoint: .tcp(host: "127.0.0.1", port: 5999), user: "op", password: "pw", database: "trackers"))
        let defaults = try PostgresAddress(parsing: "postgres", environment: environment)
        #expect(defaults == PostgresAddress(endpoint: .socket(path: "/var/run/postgresql/.s.PGSQL.5432"), user: "me", database: "me"))
        #expect(try PostgresAddress(parsing: "postgres://u@h/d?sslmode=disable", environment: environment).tls == .disable)
        #expect(throws: TrackerError.self) { try PostgresAddress(parsing: "postgres://u@h/d?colour=blue", environment: environment) }
        #expect(throws: TrackerError.self) { try PostgresAddress(parsing: "postgres://u@h:70000/d", environment: environment) }
        #expect(PostgresAddress.isPostgres("postgres://x") && !PostgresAddress.isPostgres("tracker.sqlite"))
    }
}
