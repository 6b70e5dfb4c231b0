import Foundation
import ShoalCore
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

@Suite("Tracker registry")
struct TrackerRegistryTests {
    let a = SessionToken(value: "a"), b = SessionToken(value: "b"), c = SessionToken(value: "c")
    let m1 = sampleManifest(1), m2 = sampleManifest(2)

    func peer(_ user: String, connection: UInt64, port: Int = 9000) -> TrackerRegistry.Peer {
        TrackerRegistry.Peer(user: user, host: "127.0.0.1", port: port, connection: connection, countDownloads: 0, countFailures: 0, bytesServed: 0)
    }

    func registry() -> TrackerRegistry {
        var registry = TrackerRegistry()
        _ = try? registry.login(token: a, peer: peer("alice", connection: 1))
        _ = try? registry.login(token: b, peer: peer("bob", connection: 2))
        _ = try? registry.login(token: c, peer: peer("carol", connection: 3))
        return registry
    }

    func file(_ name: String, _ m: Manifest, manifest: Bool = true, chunks: ChunkMap? = nil, have: [Int]? = nil, withdrawn: Bool? = nil) -> AnnouncedFile {
        AnnouncedFile(name: name, contentID: m.contentID, manifest: manifest ? ManifestPayload(m) : nil,
                      chunks: chunks?.base64, have: have, withdrawn: withdrawn)
    }

    /// Full and partial holders show in list and details, complete holders first.
    @Test func fullAndPartialHolders() throws {
        var registry = registry()
        #expect(try registry.announce(a, Announce(token: "", replace: true, files: [file("x.bin", m1)])) == 1)
        var partial = ChunkMap(count: m1.chunkCount)
        partial.insert(0)
        _ = try registry.announce(b, Announce(token: "", replace: true, files: [file("x.bin", m1, manifest: false, chunks: partial)]))
        #expect(registry.list() == [ListedFile(name: "x.bin", contentID: m1.contentID, size: 40_000, holders: 1, partialHolders: 1)])
        let details = try registry.wireDetails(c, name: "x.bin", contentID: nil).files
        #expect(details.count == 1)
        #expect(details[0].holders.map(\.user) == ["alice", "bob"])
        #expect(details[0].holders[0].chunks == nil)
        #expect(details[0].holders[1].chunks == partial.base64)
        #expect(try details[0].manifest?.manifest(expecting: m1.contentID) == m1)
        let refresh = try registry.wireDetails(c, name: nil, contentID: m1.contentID, withManifest: false).files
        #expect(refresh[0].manifest == nil && refresh[0].holders == details[0].holders, "a refresh: holders, no manifest")
    }

    /// Incremental `have` updates grow a partial holding until it is complete.
    @Test func incrementalUpdates() throws {
        var registry = registry()
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("x", m1, chunks: ChunkMap(count: 3))]))
        #expect(registry.list().first?.partialHolders == 1)
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("x", m1, manifest: false, have: [0, 1])]))
        #expect(registry.peer(a)?.holdings[m1.contentID]?.chunks.heldCount == 2)
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("x", m1, manifest: false, have: [2])]))
        #expect(registry.list().first?.holders == 1)
    }

    /// Two contents under one name are listed apart; details gives both,
    /// oldest first whatever their holder counts (which free accounts can
    /// inflate), with who shared each first and since when, and no manifest:
    /// the downloader must choose one by content id.
    @Test func sameNameTwoContents() throws {
        var registry = registry()
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("report.txt", m1)]), now: 100)
        _ = try registry.announce(b, Announce(token: "", replace: true, files: [file("report.txt", m2)]), now: 200)
        _ = try registry.announce(c, Announce(token: "", replace: true, files: [file("report.txt", m2, manifest: false)]), now: 300)
        let list = registry.list()
        #expect(list.count == 2)
        #expect(Set(list.map(\.contentID)) == [m1.contentID, m2.contentID])
        let details = try registry.wireDetails(a, name: "report.txt", contentID: nil).files
        #expect(details.map(\.contentID) == [m1.contentID, m2.contentID], "oldest first, not most held")
        #expect(details.map(\.firstSharedBy) == ["alice", "bob"])
        #expect(details.map(\.since) == [100, 200])
        #expect(details.map(\.completeHolders) == [1, 2])
        #expect(details.allSatisfy { $0.manifest == nil }, "no manifest when the name is ambiguous")
        #expect(details[0].holders.isEmpty, "a peer is not its own holder")
        let chosen = try registry.wireDetails(a, name: "report.txt", contentID: m1.contentID).files
        #expect(chosen.map(\.contentID) == [m1.contentID])
        #expect(chosen[0].manifest != nil)
    }

    /// Versions drawn in blocks (several instances on one database) jump:
    /// a known version inside a holding's range that was never one of its
    /// own (another session's) gets the whole map, never a delta.
    @Test func onlyAHoldingsOwnVersionsGetDeltas() throws {
        var registry = TrackerRegistry(versions: .shared)
        registry.supplyVersions([100..<101, 200..<201, 300..<400])
        let big = sampleManifest(6, chunks: 100)
        _ = try registry.login(token: a, peer: peer("alice", connection: 1))
        _ = try registry.login(token: b, peer: peer("bob", connection: 2, port: 0))
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("x", big, chunks: ChunkMap(count: 100))]))
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("x", big, manifest: false, have: [1])]))
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("x", big, manifest: false, have: [2])]))
        func alice(_ known: UInt64?) throws -> Holder {
            try registry.wireDetails(b, name: nil, contentID: big.contentID, knownMaps: known.map { ["alice": $0] }).files[0].holders[0]
        }
        #expect(try alice(nil).mapVersion == 300)
        #expect(try alice(100).gained == [1, 2], "its first version")
        #expect(try alice(200).gained == [2], "its second")
        for foreign: UInt64 in [150, 250, 299] {
            #expect(try alice(foreign).gained == nil && alice(foreign).chunks != nil, "\(foreign) was never alice's")
        }
    }

    /// A refresh that says which map version it has gets the chunks gained
    /// since, not the map; a replaced map, a new session or a version older
    /// than the log come whole again.
    @Test func chunkMapChangesOnly() throws {
        var limits = TrackerRegistry.Limits()
        limits.deltaChunks = 4
        var registry = TrackerRegistry(limits: limits)
        let big = sampleManifest(5, chunks: 100)
        _ = try registry.login(token: a, peer: peer("alice", connection: 1))
        _ = try registry.login(token: b, peer: peer("bob", connection: 2, port: 0))
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("x", big, chunks: ChunkMap(count: 100))]))
        func alice(_ known: UInt64?) throws -> Holder {
            try registry.wireDetails(b, name: nil, contentID: big.contentID, knownMaps: known.map { ["alice": $0] }).files[0].holders[0]
        }
        let first = try alice(nil)
        #expect(first.chunks != nil && first.gained == nil)
        let v0 = try #require(first.mapVersion)
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("x", big, manifest: false, have: [3, 4])]))
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("x", big, manifest: false, have: [4, 9])]))
        let delta = try alice(v0)
        #expect(delta.chunks == nil && delta.gained == [3, 4, 9], "only what it gained since v0")
        let v1 = try #require(delta.mapVersion)
        #expect(v1 > v0)
        #expect(try alice(v1).gained == [], "nothing new: an empty change")
        // The log keeps 4 chunks: a version from before them gets the whole map.
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("x", big, manifest: false, have: [10, 11, 12])]))
        #expect(try alice(v0).gained == nil && alice(v0).chunks != nil)
        #expect(try alice(v1).gained == [10, 11, 12])
        // A replaced map, then a new session: whole maps again, never a stale delta.
        let v2 = try #require(try alice(nil).mapVersion)
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("x", big, manifest: false, chunks: ChunkMap(count: 100))]))
        #expect(try alice(v2).chunks != nil)
        registry.logout(a)
        _ = try registry.login(token: c, peer: peer("alice", connection: 3))
        _ = try registry.announce(c, Announce(token: "", replace: true, files: [file("x", big, chunks: ChunkMap(count: 100))]))
        #expect(try alice(v2).chunks != nil, "a version from the old session means nothing to the new one")
    }

    /// Holders come in pages by user name; the pages together are every holder once.
    @Test func holderPages() throws {
        var limits = TrackerRegistry.Limits()
        limits.holdersPage = 3
        var registry = TrackerRegistry(limits: limits)
        let users = (0..<10).map { String(format: "user%02d", $0) }
        for (i, user) in users.enumerated() {
            let token = SessionToken(value: user)
            _ = try registry.login(token: token, peer: peer(user, connection: UInt64(i)))
            _ = try registry.announce(token, Announce(token: "", replace: true, files: [file("x", m1)]))
        }
        _ = try registry.login(token: a, peer: peer("asker", connection: 99, port: 0))
        var seen: [String] = []
        var after: String?
        var pages = 0
        repeat {
            let page = try registry.wireDetails(a, name: nil, contentID: m1.contentID, holdersAfter: after).files[0]
            #expect(page.holders.count <= 3)
            seen += page.holders.map(\.user)
            after = page.moreHolders == nil ? nil : page.holders.last?.user
            pages += 1
        } while after != nil && pages < 20
        #expect(seen == users)
        #expect(pages == 4)
    }

    /// Manifests come in parts that put together hash to the content id.
    @Test func manifestParts() throws {
        var registry = registry()
        let big = sampleManifest(9, chunks: 2500)
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("big", big)]))
        let detail = try registry.wireDetails(b, name: "big", contentID: nil).files[0]
        #expect(detail.manifest == nil, "too big to carry inline")
        #expect(detail.chunkCount == 2500)
        var digests = Data()
        var from = 0
        while from < 2500 {
            let part = try registry.wireManifestPart(b, contentID: big.contentID, from: from)
            let bytes = Data(base64Encoded: part.digests)!
            #expect(bytes.count <= ManifestPart.maximumDigests * 32)
            digests += bytes
            from += bytes.count / 32
        }
        let rebuilt = try Manifest(fileSize: big.fileSize, chunkSize: big.chunkSize, concatenatedDigests: digests)
        #expect(rebuilt.contentID == big.contentID)
        #expect(throws: TrackerError.self) { try registry.wireManifestPart(b, contentID: big.contentID, from: 2500) }
        #expect(throws: TrackerError.self) { try registry.wireManifestPart(b, contentID: big.contentID, from: -1) }
    }

    /// Global bounds: sessions per account, and chunks over all manifests.
    @Test func globalBounds() throws {
        var limits = TrackerRegistry.Limits()
        limits.sessionsPerAccount = 2
        limits.chunksOverall = 3000
        var registry = TrackerRegistry(limits: limits)
        _ = try registry.login(token: a, peer: peer("mallory", connection: 1, port: 0))
        _ = try registry.login(token: b, peer: peer("mallory", connection: 2))
        #expect(throws: TrackerError.self) { try registry.login(token: c, peer: peer("mallory", connection: 3, port: 0)) }
        // A serving login that replaces the serving session is not one more.
        _ = try registry.login(token: c, peer: peer("mallory", connection: 3))
        #expect(registry.connectedCount == 2)
        _ = try registry.announce(c, Announce(token: "", replace: true, files: [file("big", sampleManifest(9, chunks: 2500))]))
        let d = SessionToken(value: "d")
        _ = try registry.login(token: d, peer: peer("trudy", connection: 4))
        #expect(throws: TrackerError.self) {
            try registry.announce(d, Announce(token: "", replace: true, files: [file("big2", sampleManifest(10, chunks: 600))]))
        }
        _ = try registry.announce(d, Announce(token: "", replace: true, files: [file("small", sampleManifest(10, chunks: 400))]))
        #expect(registry.totalChunks == 2900)
        registry.logout(c)
        #expect(registry.totalChunks == 400)
    }

    /// Logging out, replacing and withdrawing remove holdings; a content nobody holds is forgotten.
    @Test func holdingsGoWithTheSession() throws {
        var registry = registry()
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("x", m1), file("y", m2)]))
        _ = try registry.announce(a, Announce(token: "", replace: false, files: [file("y", m2, manifest: false, withdrawn: true)]))
        #expect(registry.list().map(\.name) == ["x"])
        #expect(registry.contentCount == 1)
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("z", m2)]))
        #expect(registry.list().map(\.name) == ["z"])
        registry.logout(a)
        #expect(registry.list().isEmpty)
        #expect(registry.contentCount == 0)
        #expect(throws: TrackerError.notFound("a file named \"z\"")) { try registry.wireDetails(b, name: "z", contentID: nil) }
    }

    /// A second login of the same user replaces the first session.
    @Test func reloginReplaces() throws {
        var registry = registry()
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("x", m1)]))
        let replaced = try registry.login(token: SessionToken(value: "a2"), peer: peer("alice", connection: 9))
        #expect(replaced?.0 == a)
        #expect(registry.peer(a) == nil)
        #expect(registry.list().isEmpty)
        #expect(registry.connectedCount == 3)
    }

    /// The asker's account is never listed as a holder, from any of its
    /// sessions: a tool's port-0 session does not see its own seeding one.
    @Test func ownAccountIsNeverListed() throws {
        var registry = registry()
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("x", m1)]))
        let tool = SessionToken(value: "alice-tool")
        _ = try registry.login(token: tool, peer: peer("alice", connection: 7, port: 0))
        #expect(try registry.wireDetails(tool, name: "x", contentID: nil).files.first?.holders.isEmpty == true)
        #expect(try registry.wireDetails(b, name: "x", contentID: nil).files.first?.holders.map(\.user) == ["alice"])
        #expect(registry.fileSize(of: m1.contentID) == m1.fileSize)
    }

    /// Bad announces are refused whole, and change nothing.
    @Test func badAnnouncesChangeNothing() throws {
        var registry = registry()
        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("keep", m1)]))
        let before = registry.list()
        let bad: [[AnnouncedFile]] = [
            [file("ok", m2), file("a/b", m2)],
            [file("ok", m2), file("..", m2)],
            [file("nul\0", m2)],
            [file(String(repeating: "n", count: 300), m2)],
            [file("no-manifest", m2, manifest: false)],
            [AnnouncedFile(name: "forged", contentID: m1.contentID == m2.contentID ? m1.contentID : m2.contentID, manifest: ManifestPayload(sampleManifest(3)))],
            [file("bad-index", m2, have: [99])],
            [AnnouncedFile(name: "bad-map", contentID: m2.contentID, manifest: ManifestPayload(m2), chunks: "////")],
        ]
        for files in bad {
            #expect(throws: TrackerError.self, "\(files.map(\.name))") {
                try registry.announce(a, Announce(token: "", replace: true, files: files))
            }
            #expect(registry.list() == before)
        }
        var small = TrackerRegistry(limits: { var l = TrackerRegistry.Limits(); l.filesPerAnnounce = 2; l.contentsPerSession = 2; return l }())
        _ = try small.login(token: a, peer: peer("alice", connection: 1))
        #expect(throws: TrackerError.self) {
            try small.announce(a, Announce(token: "", replace: true, files: [file("1", m1), file("2", m2), file("3", sampleManifest(3))]))
        }
        _ = try small.login(token: b, peer: peer("bob", connection: 2, port: 0))
        #expect(throws: TrackerError.self) { try small.announce(b, Announce(token: "", replace: true, files: [file("1", m1)])) }
    }
}

@Suite("Login throttle")
struct LoginThrottleTests {
    /// Five free failures, then a doubling wait; success clears it.
    @Test func doublingWait() {
        var throttle = LoginThrottle()
        for i in 0..<5 {
            #expect(throttle.begin(user: "u", address: "198.18.0.1", now: Double(i)) == 0)
        }
        #expect(throttle.begin(user: "u", address: "198.18.0.1", now: 4) == 1, "refused, and not counted")
        #expect(throttle.wait(user: "u", address: "198.18.0.1", now: 5.5) == 0)
        #expect(throttle.begin(user: "u", address: "198.18.0.1", now: 6) == 0)
        #expect(throttle.wait(user: "u", address: "198.18.0.1", now: 6) == 2)
        #expect(throttle.wait(user: "other", address: "198.18.0.1", now: 6) == 0)
        #expect(throttle.wait(user: "u", address: "198.18.0.2", now: 6) == 0, "another source is not slowed")
        throttle.succeeded(user: "u", address: "198.18.0.1")
        #expect(throttle.wait(user: "u", address: "198.18.0.1", now: 6) == 0)
    }

    /// It forgets the oldest names past its capacity.
    @Test func bounded() {
        var throttle = LoginThrottle(capacity: 3)
        for i in 0..<10 { throttle.failed(user: "u\(i)", address: "198.18.0.1", now: Double(i)) }
        #expect(throttle.trackedNames == 3)
    }
}

@Suite("Password hasher")
struct PasswordHasherTests {
    /// Salted: the same password hashes differently; verify accepts only the right one.
    @Test func saltedAndVerified() {
        let hasher = PasswordHasher(rounds: 1_000)
        let one = hasher.hash("correct horse")
        let two = hasher.hash("correct horse")
        #expect(one != two)
        #expect(one.hasPrefix("pbkdf2-sha256$1000$"))
        #expect(!one.contains("correct horse"))
        #expect(hasher.verify("correct horse", against: one))
        #expect(!hasher.verify("correct horsE", against: one))
        #expect(!hasher.verify("x", against: "garbage"))
    }
}

@Suite("Tracker connection state machine")
struct TrackerConnectionStateMachineTests {
    @Test func events() {
        var machine = TrackerConnectionStateMachine()
        #expect(machine.receive(.list(ListFiles(token: ""))) == .handle)
        #expect(machine.receive(.active(Active(nonce: 1))) == .ignore)
        #expect(machine.receive(.checkActive(CheckActive(nonce: 7))) == .answerProbe(nonce: 7))
        guard case .refuse = machine.receive(.hello(Hello(role: "peer", software: "x"))) else { Issue.record("second hello accepted"); return }
        guard case .refuse = machine.receive(.registered(Registered(user: "x"))) else { Issue.record("reply accepted as request"); return }
        let token = SessionToken(value: "t")
        #expect(machine.loggedIn(token) == nil)
        #expect(machine.session == token)
        #expect(machine.loggedIn(SessionToken(value: "u")) == token)
        machine.loggedOut()
        #expect(machine.session == nil)
        _ = machine.loggedIn(token)
        #expect(machine.closed() == token)
        guard case .refuse = machine.receive(.list(ListFiles(token: ""))) else { Issue.record("closed accepted"); return }
    }
}

/// The registry fed and read through the tracker's message boundary
/// (``Announcement/init(_:maximumFiles:)``, ``FileDetails/init(_:)``), as the tracker does.
extension TrackerRegistry {
    @discardableResult
    mutating func announce(_ token: SessionToken, _ message: Announce, now: Double = 0) throws(TrackerError) -> Int {
        try announce(token, Announcement(message, maximumFiles: limits.filesPerAnnounce), now: now).files
    }

    func wireDetails(_ token: SessionToken, name: String?, contentID: ContentID?, withManifest: Bool = true,
                     holdersAfter: String? = nil, knownMaps: [String: UInt64]? = nil) throws(TrackerError) -> FileDetails {
        FileDetails(try details(token, name: name, contentID: contentID, withManifest: withManifest, holdersAfter: holdersAfter, knownMaps: knownMaps))
    }

    func wireManifestPart(_ token: SessionToken, contentID: ContentID, from: Int) throws(TrackerError) -> ManifestPart {
        ManifestPart(try manifestPart(token, contentID: contentID, from: from))
    }
}
