import ShoalCore
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// Other instances' sessions in this instance's registry: listed and
/// detailed like local ones, changed and closed only by what the store says,
/// every change bumping the generation; chunk-map versions from supplied blocks.
@Suite("Tracker registry: mirrored sessions")
struct TrackerRegistryMirrorTests {
    let local = SessionToken(value: "local"), remote = SessionToken(value: "remote")
    let m1 = sampleManifest(1), m2 = sampleManifest(2)

    func registry() throws -> TrackerRegistry {
        var registry = TrackerRegistry()
        _ = try registry.login(token: local, peer: TrackerRegistry.Peer(user: "viewer", host: "127.0.0.1", port: 0, connection: 1,
                                                                        countDownloads: 0, countFailures: 0, bytesServed: 0))
        return registry
    }

    func session(_ token: SessionToken, user: String = "seeder", instance: String = "instance-a", port: Int = 7001) -> StoredSession {
        StoredSession(token: token, instance: instance, user: user, host: "10.0.0.7", port: port, keyFingerprint: nil, leaseExpiry: 100)
    }

    func content(_ m: Manifest) -> StoredContent { StoredContent(manifest: m, firstSharedBy: "seeder", since: 50) }

    func holding(_ name: String, _ m: Manifest, chunks: [Int]? = nil, version: UInt64) throws -> TrackerRegistry.Holding {
        var map = ChunkMap(count: m.chunkCount, full: chunks == nil)
        for index in chunks ?? [] { map.insert(index) }
        return TrackerRegistry.Holding(names: [try FileName(name)], chunks: map, version: version)
    }

    /// A mirrored session is listed and detailed with its address, counters
    /// and chunk map, counts as connected, and is marked remote.
    @Test func aMirroredSessionIsListedAndDetailed() throws {
        var registry = try registry()
        let before = registry.generation
        let counters = AccountCounters(user: "seeder", countDownloads: 4, countFailures: 1, bytesServed: 9000)
        let changed = registry.mirror(TrackerRegistry.RemoteSession(session: session(remote), holdings: [
            m1.contentID: try holding("a.bin", m1, version: 10),
            m2.contentID: try holding("b.bin", m2, chunks: [1], version: 11),
        ], counters: counters), manifests: [m1.contentID: content(m1), m2.contentID: content(m2)])
        #expect(changed)
        #expect(registry.generation != before)
        #expect(registry.connectedCount == 2)
        #expect(registry.peer(remote)?.isRemote == true && registry.peer(remote)?.instance == "instance-a")
        #expect(registry.list().map(\.name) == ["a.bin", "b.bin"])
        let view = try registry.details(local, name: "b.bin", contentID: nil)
        let holder = try #require(view.contents.first?.holders.first)
        #expect(holder.user == "seeder" && holder.host == "10.0.0.7" && holder.port == 7001)
        #expect(holder.countDownloads == 4 && holder.countFailures == 1 && holder.bytesServed == 9000)
        #expect(holder.chunks?.indices == [1] && holder.mapVersion == 11)
        #expect(view.contents.first?.firstSharedBy == "seeder" && view.contents.first?.since == 50)
        // A downloader that knows version 11 is told nothing new; an older one gets the whole map.
        let known = try registry.details(local, name: "b.bin", contentID: nil, knownMaps: ["seeder": 11]).contents[0].holders[0]
        #expect(known.chunks == nil && known.gained == [])
        let older = try registry.details(local, name: "b.bin", contentID: nil, knownMaps: ["seeder": 5]).contents[0].holders[0]
        #expect(older.chunks?.indices == [1])
    }

    /// The same state again changes nothing (the generation stays); a new
    /// map, a withdrawal, new counters and the end of the session each change what is shown.
    @Test func changesAndTheEndOfAMirroredSession() throws {
        var registry = try registry()
        let manifests = [m1.contentID: content(m1), m2.contentID: content(m2)]
        var state = TrackerRegistry.RemoteSession(session: session(remote), holdings: [
            m1.contentID: try holding("a.bin", m1, version: 10),
            m2.contentID: try holding("b.bin", m2, chunks: [0], version: 11),
        ], counters: nil)
        registry.mirror(state, manifests: manifests)
        let generation = registry.generation
        let unchanged = registry.mirror(state, manifests: [:])
        #expect(!unchanged)
        #expect(registry.generation == generation)

        state.holdings[m2.contentID] = try holding("b.bin", m2, chunks: [0, 2], version: 12)
        state.holdings.removeValue(forKey: m1.contentID)
        let changed = registry.mirror(state, manifests: [:])
        #expect(changed)
        #expect(registry.generation != generation)
        #expect(registry.list().map(\.name) == ["b.bin"], "a withdrawn content nobody else holds is forgotten")
        #expect(registry.contentCount == 1)
        #expect(registry.peer(remote)?.holdings[m2.contentID]?.chunks.indices == [0, 2])

        registry.setCounters(user: "seeder", downloads: 7, failures: 0, bytesServed: 70)
        #expect(try registry.details(local, name: "b.bin", contentID: nil).contents[0].holders[0].countDownloads == 7)

        let beforeDrop = registry.generation
        let gone = registry.dropRemote(remote)
        #expect(gone?.user == "seeder")
        #expect(registry.generation != beforeDrop)
        #expect(registry.list().isEmpty && registry.connectedCount == 1 && registry.totalChunks == 0)
    }

    /// This instance's own sessions are never overwritten or closed by the
    /// mirror, and a full read closes exactly the remote sessions it lacks.
    @Test func ownSessionsAreLeftAloneAndAFullReadDropsTheMissing() throws {
        var registry = try registry()
        let touched = registry.mirror(TrackerRegistry.RemoteSession(session: session(local, user: "viewer"), holdings: [:], counters: nil), manifests: [:])
        #expect(!touched)
        #expect(registry.peer(local)?.isRemote == false)
        let dropped = registry.dropRemote(local)
        #expect(dropped == nil && registry.peer(local) != nil)

        let other = SessionToken(value: "other")
        registry.mirror(TrackerRegistry.RemoteSession(session: session(remote), holdings: [m1.contentID: try holding("a.bin", m1, version: 3)],
                                                      counters: nil), manifests: [m1.contentID: content(m1)])
        registry.mirror(TrackerRegistry.RemoteSession(session: session(other, user: "second"), holdings: [:], counters: nil), manifests: [:])
        #expect(registry.remoteTokens == [remote, other])
        let changes = registry.mirrorAll([TrackerRegistry.RemoteSession(session: session(other, user: "second"), holdings: [:], counters: nil)],
                                         manifests: [:])
        #expect(changes == 1)
        #expect(registry.remoteTokens == [other] && registry.list().isEmpty && registry.peer(local) != nil)
    }

    /// A holding whose manifest is unknown waits for it, instead of inventing one.
    @Test func aHoldingWithoutItsManifestWaits() throws {
        var registry = try registry()
        let state = TrackerRegistry.RemoteSession(session: session(remote), holdings: [m1.contentID: try holding("a.bin", m1, version: 3)], counters: nil)
        registry.mirror(state, manifests: [:])
        #expect(registry.list().isEmpty && registry.unknownContents([m1.contentID]) == [m1.contentID])
        let applied = registry.mirror(state, manifests: [m1.contentID: content(m1)])
        #expect(applied)
        #expect(registry.list().map(\.name) == ["a.bin"] && registry.unknownContents([m1.contentID]).isEmpty)
    }

    /// A local login of a user whose serving session is another
    /// instance's replaces it (the tracker then closes it in the store).
    @Test func aLocalLoginReplacesAnotherInstancesSession() throws {
        var registry = try registry()
        registry.mirror(TrackerRegistry.RemoteSession(session: session(remote), holdings: [m1.contentID: try holding("a.bin", m1, version: 3)],
                                                      counters: nil), manifests: [m1.contentID: content(m1)])
        let mine = SessionToken(value: "mine")
        let replaced = try registry.login(token: mine, peer: TrackerRegistry.Peer(user: "seeder", host: "127.0.0.1", port: 7002, connection: 2,
                                                                                countDownloads: 0, countFailures: 0, bytesServed: 0))
        #expect(replaced?.0 == remote && replaced?.1.isRemote == true)
        #expect(registry.token(ofUser: "seeder") == mine && registry.list().isEmpty)
    }

    /// With a shared clock, versions come only from supplied blocks, in
    /// order; an announce with none left is refused, not given a made-up version.
    @Test func sharedVersionsComeFromBlocks() throws {
        var registry = TrackerRegistry(versions: .shared)
        _ = try registry.login(token: local, peer: TrackerRegistry.Peer(user: "seeder", host: "127.0.0.1", port: 7000, connection: 1,
                                                                        countDownloads: 0, countFailures: 0, bytesServed: 0))
        let announce = Announce(token: "", replace: true, files: [AnnouncedFile(name: "a.bin", contentID: m1.contentID, manifest: ManifestPayload(m1))])
        #expect(throws: TrackerError.self) { _ = try registry.announce(local, announce) }
        registry.supplyVersions([8192..<8194, 4096..<4097])
        #expect(registry.versions.available == 3)
        _ = try registry.announce(local, announce)
        #expect(registry.peer(local)?.holdings[m1.contentID]?.version == 4096)
        _ = try registry.announce(local, Announce(token: "", replace: true, files: [
            AnnouncedFile(name: "b.bin", contentID: m2.contentID, manifest: ManifestPayload(m2)),
        ]))
        #expect(registry.peer(local)?.holdings[m2.contentID]?.version == 8192)
        #expect(TrackerRegistry.versionsNeeded(for: try Announcement(announce, maximumFiles: 10)) == 2)
    }
}
