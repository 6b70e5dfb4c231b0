import Foundation
import NIOCore
import ShoalCore
import ShoalNet
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// `list` and `details` are served from replies encoded once per change of
/// the registry (``ListCache``, ``DetailsCache``): each test asks the same
/// question twice (the second answer comes from the cache), changes the
/// swarm, and checks that the very next answer shows the change.
@Suite("Reply caches", .timeLimit(.minutes(2)))
struct ReplyCacheTests {
    /// An announce, a logout and a dropped connection each show in the
    /// next `details`, and a second holder of a content asked about before
    /// is listed at once.
    @Test(arguments: TestStore.allCases) func detailsFollowAnnounceAndLogout(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let alice = try await tracker.connect(), bob = try await tracker.connect(), carol = try await tracker.connect()
        let aliceToken = try await alice.signUp("alice", port: 7001)
        let bobToken = try await bob.signUp("bob", port: 7002)
        let carolToken = try await carol.signUp("carol", port: 0)
        let m = sampleManifest(1)
        try await alice.announce(aliceToken, [("shared.bin", m)])

        // The first answer is built, the second comes from the cache: the same but for the download id.
        var answers: [FileDetail] = []
        for _ in 0..<2 {
            let details = try await carol.details(carolToken, name: "shared.bin")
            #expect(details.map { $0.holders.map(\.user) } == [["alice"]])
            #expect(details.first?.manifest == ManifestPayload(m))
            answers += details.map { var detail = $0; detail.downloadID = nil; return detail }
        }
        #expect(answers.count == 2 && answers[0] == answers[1])
        try await bob.announce(bobToken, [("shared.bin", m)])
        #expect(try await carol.details(carolToken, name: "shared.bin").first?.holders.map(\.user) == ["alice", "bob"])
        #expect(try await carol.details(carolToken, contentID: m.contentID).first?.holders.map(\.user) == ["alice", "bob"])

        // Bob withdraws by logging out, Alice by dropping her connection.
        _ = try await bob.request(.logout(Logout(token: bobToken)))
        #expect(try await carol.details(carolToken, name: "shared.bin").first?.holders.map(\.user) == ["alice"])
        alice.close()
        try await eventually { await refusalCode { _ = try await carol.details(carolToken, name: "shared.bin") } == "not_found" }
        bob.close()
        carol.close()
        await tracker.stopAndRemove()
    }

    /// An asker that holds the content itself is never listed to itself,
    /// even when the same question was just answered (from the cache) to
    /// someone else; and the other way round.
    @Test(arguments: TestStore.allCases) func askerIsNeverItsOwnHolder(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let alice = try await tracker.connect(), bob = try await tracker.connect(), carol = try await tracker.connect()
        let aliceToken = try await alice.signUp("alice", port: 7001)
        let bobToken = try await bob.signUp("bob", port: 7002)
        let carolToken = try await carol.signUp("carol", port: 0)
        let m = sampleManifest(2)
        try await alice.announce(aliceToken, [("both.bin", m)])
        try await bob.announce(bobToken, [("both.bin", m)])

        #expect(try await carol.details(carolToken, name: "both.bin").first?.holders.map(\.user) == ["alice", "bob"])
        #expect(try await alice.details(aliceToken, name: "both.bin").first?.holders.map(\.user) == ["bob"])
        #expect(try await bob.details(bobToken, name: "both.bin").first?.holders.map(\.user) == ["alice"])
        #expect(try await carol.details(carolToken, name: "both.bin").first?.holders.map(\.user) == ["alice", "bob"])
        #expect(try await alice.details(aliceToken, name: "both.bin").first?.holders.map(\.user) == ["bob"])
        for connection in [alice, bob, carol] { connection.close() }
        await tracker.stopAndRemove()
    }

    /// Every `details`, cached or not, carries a download id of its own
    /// (the same one when the asker sends it back), and a report with an
    /// id from a cached reply is taken; the counters it moves show in the
    /// next `details` at once.
    @Test(arguments: TestStore.allCases) func downloadIDsAndCountersFromCachedReplies(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let alice = try await tracker.connect(), carol = try await tracker.connect(), dave = try await tracker.connect()
        let aliceToken = try await alice.signUp("alice", port: 7001)
        let carolToken = try await carol.signUp("carol", port: 0)
        let daveToken = try await dave.signUp("dave", port: 0)
        let m = sampleManifest(3)
        try await alice.announce(aliceToken, [("served.bin", m)])

        let first = try #require(try await carol.details(carolToken, name: "served.bin").first)
        let second = try #require(try await dave.details(daveToken, name: "served.bin").first)
        let third = try #require(try await carol.details(carolToken, name: "served.bin").first)
        let ids = [first.downloadID, second.downloadID, third.downloadID].compactMap { $0 }
        #expect(ids.count == 3 && Set(ids).count == 3, "each details has a download id of its own: \(ids)")
        guard case let .fileDetails(refreshed) = try await carol.request(.details(Details(token: carolToken, name: "served.bin", downloadID: third.downloadID))) else {
            Issue.record("no fileDetails")
            return
        }
        #expect(refreshed.files.first?.downloadID == third.downloadID)
        // Dave's id came from a cached reply (the same question, unchanged swarm).
        guard case .reported = try await dave.request(.report(Report(token: daveToken, contentID: m.contentID, holder: "alice", outcome: .success,
                                                                       bytes: 40_000, downloadID: second.downloadID))) else {
            Issue.record("report refused")
            return
        }
        let after = try #require(try await carol.details(carolToken, name: "served.bin").first?.holders.first)
        #expect(after.countDownloads == 1 && after.bytesServed == 40_000)
        // Carol's id is hers: Dave cannot report with it.
        #expect(await refusalCode {
            _ = try await dave.request(.report(Report(token: daveToken, contentID: m.contentID, holder: "alice", outcome: .failure,
                                                      bytes: 0, downloadID: first.downloadID)))
        } == "not_allowed")
        for connection in [alice, carol, dave] { connection.close() }
        await tracker.stopAndRemove()
    }

    /// Pages and cursors stay right when files come and go between pages:
    /// a walk through the list after each change sees exactly the files
    /// shared then, in order, each once.
    @Test(arguments: TestStore.allCases) func listPagesFollowChanges(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store) { $0.limits.listPage = 2 }
        let alice = try await tracker.connect(), carol = try await tracker.connect()
        let aliceToken = try await alice.signUp("alice", port: 7001)
        let carolToken = try await carol.signUp("carol", port: 0)

        func walk() async throws -> [String] {
            var names: [String] = []
            var cursor: ListCursor?
            repeat {
                guard case let .fileList(page) = try await carol.request(.list(ListFiles(token: carolToken, after: cursor))) else {
                    throw NetError.unexpectedReply(expected: "fileList", received: "something else")
                }
                #expect(page.files.count <= 2)
                names += page.files.map(\.name)
                cursor = page.next
            } while cursor != nil
            return names
        }

        var shared = ["a.bin", "c.bin", "e.bin", "g.bin", "i.bin"]
        try await alice.announce(aliceToken, shared.enumerated().map { ($1, sampleManifest(UInt8(10 + $0))) })
        #expect(try await walk() == shared)
        #expect(try await walk() == shared)
        // One in the middle of the first page, one at the end.
        shared += ["b.bin", "z.bin"]
        try await alice.announce(aliceToken, shared.enumerated().map { ($1, sampleManifest(UInt8(10 + $0))) })
        #expect(try await walk() == shared.sorted())
        try await alice.announce(aliceToken, [("f.bin", sampleManifest(40))])
        #expect(try await walk() == ["f.bin"])
        #expect(try await carol.list(carolToken).map(\.name) == ["f.bin"])
        _ = try await alice.request(.logout(Logout(token: aliceToken)))
        #expect(try await walk() == [])
        alice.close()
        carol.close()
        await tracker.stopAndRemove()
    }

    /// `holders` and `partialHolders` in the list follow a partial holder
    /// completing its file.
    @Test(arguments: TestStore.allCases) func listCountsFollowChunkMaps(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let alice = try await tracker.connect(), carol = try await tracker.connect()
        let aliceToken = try await alice.signUp("alice", port: 7001)
        let carolToken = try await carol.signUp("carol", port: 0)
        let m = sampleManifest(5)
        var none = ChunkMap(count: m.chunkCount)
        none.insert(0)
        let partial = AnnouncedFile(name: "growing.bin", contentID: m.contentID, manifest: ManifestPayload(m), chunks: none.base64)
        _ = try await alice.request(.announce(Announce(token: aliceToken, replace: true, files: [partial])))
        for _ in 0..<2 {
            let row = try #require(try await carol.list(carolToken).first)
            #expect(row.holders == 0 && row.partialHolders == 1)
        }
        let rest = AnnouncedFile(name: "growing.bin", contentID: m.contentID, have: Array(1..<m.chunkCount))
        _ = try await alice.request(.announce(Announce(token: aliceToken, replace: false, files: [rest])))
        let row = try #require(try await carol.list(carolToken).first)
        #expect(row.holders == 1 && row.partialHolders == 0)
        alice.close()
        carol.close()
        await tracker.stopAndRemove()
    }

    /// Polls `condition` until it holds, for up to 20 s.
    private func eventually(_ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the condition did not hold within 20 s")
    }
}
