import Foundation
import ShoalCore
import ShoalNet
import ShoalOperator
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// The operator's JSON API and /metrics against a real tracker with real
/// clients, all over loopback sockets.
@Suite struct OperatorAPITests {
    /// The API shows accounts (connected or not), each file with its holders
    /// and an availability bar whose rarest cells are the chunks only the
    /// complete holder has, and each peer's counters and score.
    @Test func apiShowsTheSwarm() async throws {
        // Failures count in full at once, so the score moves in this test.
        try await OperatorFixture.with({ $0.reputation = ReputationRule(minimumRecordAge: 0, minimumVouchers: 0, newcomerFailuresPerCount: 1) }) { view in
            let song = sampleManifest(7, chunks: 1000)
            let (alice, _) = try await view.peer("alice", port: 9001, files: [("song.ogg", song)])
            defer { alice.close() }
            // bob holds the first 250 chunks only.
            let (bob, bobToken) = try await view.peer("bob", port: 9002, files: [])
            defer { bob.close() }
            let partial = ChunkMap(count: 1000, indices: 0..<250)
            _ = try await bob.request(.announce(Announce(token: bobToken, replace: true, files: [
                AnnouncedFile(name: "song.ogg", contentID: song.contentID, manifest: ManifestPayload(song), chunks: Data(partial.bytes).base64EncodedString()),
            ])))
            // carol has an account but is offline.
            let registrar = try await view.tracker.connect()
            try await registrar.register("carol")
            registrar.close()
            // bob says alice served him; dave says she failed him.
            let details = try await bob.details(bobToken, name: "song.ogg")
            _ = try await bob.request(.report(Report(token: bobToken, contentID: song.contentID, holder: "alice", outcome: .success,
                                                     bytes: 4_000_000, downloadID: details[0].downloadID)))
            let (dave, daveToken) = try await view.peer("dave", port: 0, files: [])
            defer { dave.close() }
            let daveDetails = try await dave.details(daveToken, name: "song.ogg")
            _ = try await dave.request(.report(Report(token: daveToken, contentID: song.contentID, holder: "alice", outcome: .failure,
                                                      bytes: 0, downloadID: daveDetails[0].downloadID)))

            let snapshot = try await view.snapshot()
            #expect(snapshot.registered == 4)
            #expect(snapshot.connected == 3)
            #expect(snapshot.peers.map(\.user) == ["alice", "bob", "carol", "dave"])
            #expect(snapshot.peers.map(\.connected) == [true, true, false, true])
            let a = try #require(snapshot.peers.first { $0.user == "alice" })
            #expect(a.port == 9001 && a.host == "127.0.0.1" && a.files == 1)
            #expect(a.countDownloads == 1 && a.countFailures == 1 && a.bytesServed == 4_000_000)
            #expect(a.score == PeerScore(responseTime: 1, countDownloads: 1, countFailures: 1).reputation)
            #expect(a.score > 1)
            let b = try #require(snapshot.peers.first { $0.user == "bob" })
            #expect(b.score == 1)

            let file = try #require(snapshot.files.first)
            #expect(snapshot.files.count == 1 && snapshot.fileCount == 1)
            #expect(file.name == "song.ogg" && file.contentID == song.contentID && file.chunkCount == 1000)
            #expect(file.completeHolders == 1 && file.partialHolders == 1)
            #expect(file.holders == [OperatorSnapshot.Holder(user: "alice", complete: true, chunks: 1000),
                                     OperatorSnapshot.Holder(user: "bob", complete: false, chunks: 250)])
            let bar = file.availability
            #expect(bar.cells.count == 200 && bar.chunksPerCell == 5 && bar.holders == 2)
            #expect(bar.cells.prefix(50).allSatisfy { $0 == 2 })
            #expect(bar.cells.dropFirst(50).allSatisfy { $0 == 1 })
            #expect(bar.rarest == 1 && bar.rarestChunks == 750)
        }
    }

    /// Large swarms come in pages: 32 files and 256 accounts at most, with
    /// cursors that lead to the rest and never repeat a row.
    @Test func apiPagesLargeSwarms() async throws {
        try await OperatorFixture.with { view in
            let files = (0..<40).map { (String(format: "file-%02d.bin", $0), sampleManifest(UInt8($0), chunks: 3)) }
            let (alice, _) = try await view.peer("alice", files: files)
            defer { alice.close() }
            let registrar = try await view.tracker.connect()
            for index in 0..<300 { try await registrar.register(String(format: "user%03d", index)) }
            registrar.close()

            let first = try await view.snapshot()
            #expect(first.files.count == 32 && first.fileCount == 40)
            #expect(first.peers.count == 256 && first.registered == 301)
            let nextFiles = try #require(first.nextFiles)
            let nextPeers = try #require(first.nextPeers)
            let second = try await view.snapshot("?filesAfterName=\(nextFiles.name)&filesAfterContent=\(nextFiles.contentID.hex)&peersAfter=\(nextPeers)")
            #expect(second.files.count == 8 && second.nextFiles == nil)
            #expect(second.peers.count == 45 && second.nextPeers == nil)
            #expect(Set((first.files + second.files).map(\.name)) == Set(files.map(\.0)))
            #expect(Set((first.peers + second.peers).map(\.user)).count == 301)

            let bad = try await view.get("/api/status?filesAfterName=x")
            #expect(bad.status == 400)
        }
    }

    /// /metrics counts requests by type with latency histograms, logins and
    /// failed logins, reported bytes, connected peers and store latency.
    @Test func metricsCountWhatTheTrackerDid() async throws {
        try await OperatorFixture.with { view in
            let movie = sampleManifest(3, chunks: 10)
            let (alice, _) = try await view.peer("alice", files: [("movie.mkv", movie)])
            defer { alice.close() }
            let (bob, bobToken) = try await view.peer("bob", files: [])
            defer { bob.close() }
            let details = try await bob.details(bobToken, name: "movie.mkv")
            _ = try await bob.request(.report(Report(token: bobToken, contentID: movie.contentID, holder: "alice", outcome: .success,
                                                     bytes: 123_456, downloadID: details[0].downloadID)))
            let intruder = try await view.tracker.connect()
            defer { intruder.close() }
            #expect(await refusalCode { _ = try await intruder.login("alice", "not her password") } == "bad_credentials")

            let reply = try await view.get("/metrics")
            #expect(reply.status == 200)
            #expect(reply.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = reply.text
            #expect(sample(text, "shoal_tracker_connected_peers") == 2)
            #expect(sample(text, "shoal_tracker_files") == 1)
            #expect(sample(text, "shoal_tracker_logins_total") == 2)
            #expect(sample(text, "shoal_tracker_failed_logins_total{reason=\"bad_credentials\"}") == 1)
            #expect(sample(text, "shoal_tracker_reported_bytes_total{outcome=\"success\"}") == 123_456)
            #expect(sample(text, "shoal_tracker_requests_total{type=\"register\",result=\"ok\"}") == 2)
            #expect(sample(text, "shoal_tracker_requests_total{type=\"login\",result=\"refused\"}") == 1)
            #expect(sample(text, "shoal_tracker_requests_total{type=\"details\",result=\"ok\"}") == 1)
            #expect(sample(text, "shoal_tracker_request_duration_seconds_count{type=\"login\"}") == 3)
            #expect(sample(text, "shoal_tracker_request_duration_seconds_bucket{type=\"login\",le=\"+Inf\"}") == 3)
            #expect(sample(text, "shoal_tracker_store_duration_seconds_count{operation=\"account\"}") == 3)
            #expect(sample(text, "shoal_tracker_store_duration_seconds_count{operation=\"create\"}") == 2)
            #expect(sample(text, "shoal_tracker_store_duration_seconds_count{operation=\"record_report\"}") == 1)

            // The snapshot's own store calls are timed too.
            _ = try await view.snapshot()
            let after = try await view.get("/metrics").text
            #expect(sample(after, "shoal_tracker_store_duration_seconds_count{operation=\"counters\"}") == 1)
        }
    }

    /// Without the operator token every path answers 401 with a message
    /// saying what is needed: no token, a wrong bearer, a wrong cookie, a
    /// wrong `?token=`, unknown paths included; a browser gets the form.
    @Test func everythingNeedsTheToken() async throws {
        try await OperatorFixture.with { view in
            for path in ["/", "/api/status", "/metrics", "/no/such/page", "/login"] {
                let reply = try await HTTPExchange.send("GET", path, port: view.port)
                #expect(reply.status == 401, "\(path)")
                #expect(reply.text.contains("operator token"), "\(path): \(reply.text)")
                #expect(reply.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
            }
            let wrong = String(repeating: "0", count: 64)
            let bearer = try await HTTPExchange.send("GET", "/metrics", port: view.port, headers: ["Authorization": "Bearer \(wrong)"])
            #expect(bearer.status == 401 && bearer.text.contains("Authorization header"))
            let basic = try await HTTPExchange.send("GET", "/metrics", port: view.port, headers: ["Authorization": "Basic \(view.token)"])
            #expect(basic.status == 401)
            let cookie = try await HTTPExchange.send("GET", "/api/status", port: view.port, headers: ["Cookie": "shoal_operator=\(wrong)"])
            #expect(cookie.status == 401 && cookie.text.contains("earlier start"))
            let query = try await HTTPExchange.send("GET", "/?token=\(wrong)", port: view.port)
            #expect(query.status == 401 && query.headers["set-cookie"] == nil)
            let form = try await HTTPExchange.send("POST", "/login", port: view.port, headers: ["Content-Type": "application/x-www-form-urlencoded"],
                                                    body: "token=\(wrong)")
            #expect(form.status == 401)
            let browser = try await HTTPExchange.send("GET", "/", port: view.port, headers: ["Accept": "text/html,application/xhtml+xml"])
            #expect(browser.status == 401 && browser.text.contains("<form method=\"post\" action=\"/login\">"))
            // A login body past 4 KiB is not read.
            let huge = try await HTTPExchange.send("POST", "/login", port: view.port, headers: ["Content-Type": "application/x-www-form-urlencoded"],
                                                    body: "token=" + String(repeating: "a", count: 10_000))
            #expect(huge.status == 413)
        }
    }

    /// A request head past the 16 KiB limit is answered 400 and the
    /// connection closed, with or without the token.
    @Test func oversizedHeadsAreRefused() async throws {
        try await OperatorFixture.with { view in
            let padding = String(repeating: "a", count: 20_000)
            let big = try await HTTPExchange.send("GET", "/metrics", port: view.port, headers: ["Authorization": "Bearer \(view.token)", "X-Padding": padding])
            #expect(big.status == 400)
            let small = try await HTTPExchange.send("GET", "/metrics", port: view.port, headers: ["Authorization": "Bearer \(view.token)", "X-Padding": "a"])
            #expect(small.status == 200)
        }
    }

    /// A browser gives the token once (`?token=` or the form) and gets an
    /// HttpOnly, SameSite=Strict cookie that opens the page and the API.
    @Test func tokenOnceThenCookie() async throws {
        try await OperatorFixture.with { view in
            let viaQuery = try await HTTPExchange.send("GET", "/?token=\(view.token)", port: view.port)
            #expect(viaQuery.status == 302 && viaQuery.headers["location"] == "/")
            let setCookie = try #require(viaQuery.headers["set-cookie"])
            #expect(setCookie.hasPrefix("shoal_operator=\(view.token)"))
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"))

            let viaForm = try await HTTPExchange.send("POST", "/login", port: view.port, headers: ["Content-Type": "application/x-www-form-urlencoded"],
                                                       body: "token=\(view.token)")
            #expect(viaForm.status == 303 && viaForm.headers["set-cookie"]?.hasPrefix("shoal_operator=\(view.token)") == true)

            let page = try await HTTPExchange.send("GET", "/", port: view.port, headers: ["Cookie": "shoal_operator=\(view.token)"])
            #expect(page.status == 200 && page.text.contains("<title>Shoal tracker</title>"))
            #expect(page.headers["content-security-policy"]?.contains("default-src 'none'") == true)
            let api = try await HTTPExchange.send("GET", "/api/status", port: view.port, headers: ["Cookie": "shoal_operator=\(view.token)"])
            #expect(api.status == 200 && api.headers["content-type"] == "application/json")
        }
    }
}
