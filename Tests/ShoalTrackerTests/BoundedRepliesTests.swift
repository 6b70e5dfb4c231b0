import Foundation
import Logging
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// No account can push a reply over the frame limit, and so make a name or
/// the whole list unavailable to everyone: `list` comes in pages, `details`
/// carries pages of holders and asks for big manifests in parts.
///
/// By default the sizes are a tenth of those that pushed a reply over the
/// 16 MiB frame limit (the mechanism is the same, and a debug build on two
/// cores stays quick); `SHOAL_LARGE_TESTS=1` runs the full sizes.
@Suite("Bounded replies", .timeLimit(.minutes(5)))
struct BoundedRepliesTests {
    static let large = ProcessInfo.processInfo.environment["SHOAL_LARGE_TESTS"] == "1"
    /// Contents in the list test (16 names each), and chunks of each huge manifest.
    static let listedContents = large ? 3_000 : 300
    static let hugeChunks = large ? 262_144 : 16_384

    /// A one-chunk manifest of `size` bytes: distinct sizes, distinct contents.
    private func tinyManifest(_ size: Int) -> Manifest {
        try! Manifest(fileSize: UInt64(size), chunkSize: 16 * 1024, digests: [ChunkDigest(hashing: [UInt8(size & 0xFF), UInt8(size >> 8)])])
    }

    private func session(_ tracker: TestTracker, _ user: String) async throws -> TrackerSession {
        let connection = try await tracker.connect()
        try await connection.register(user, "pw")
        connection.close()
        return try await TrackerSession.login(endpoint: Endpoint(host: "127.0.0.1", port: tracker.port), trust: tracker.trust, user: user, password: "pw",
                                              servePort: 0, logger: Logger(label: "test"))
    }

    /// 3,000 files under 16 long names each (48,000 rows, about 18 MB as one
    /// reply) once made `list` too large for a frame; now it comes in pages,
    /// and a client gets every row.
    @Test func aHugeListComesInPages() async throws {
        let tracker = try await TestTracker.start()
        let flooder = try await tracker.connect()
        let token = try await flooder.signUp("flooder")
        var entries: [AnnouncedFile] = []
        for index in 0..<Self.listedContents {
            let manifest = tinyManifest(index + 1)
            for copy in 0..<16 {
                let name = String(format: "%04d-%02d-", index, copy) + String(repeating: "n", count: 240)
                entries.append(AnnouncedFile(name: name, contentID: manifest.contentID, manifest: copy == 0 ? ManifestPayload(manifest) : nil))
            }
        }
        for start in stride(from: 0, to: entries.count, by: 8_000) {
            let batch = Array(entries[start..<min(entries.count, start + 8_000)])
            _ = try await flooder.request(.announce(Announce(token: token, replace: false, files: batch)), timeout: .seconds(60))
        }
        let reader = try await session(tracker, "reader")
        let rows = try await reader.list()
        #expect(rows.count == Self.listedContents * 16)
        #expect(Set(rows.map(\.name)).count == Self.listedContents * 16)
        #expect(zip(rows, rows.dropFirst()).allSatisfy { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) })
        // One page on the wire stays small.
        let raw = try await tracker.connect()
        let rawToken = try await raw.signUp("raw", port: 0)
        let page = try await raw.requestFrame(timeout: .seconds(30)) { id in try! Message.list(ListFiles(token: rawToken)).frame(requestID: id) }
        #expect(page.payload.readableBytes < 128 * 1024)
        await reader.logout()
        flooder.close()
        raw.close()
        await tracker.stopAndRemove()
    }

    /// Two 1 TiB manifests announced under "doc.txt" (11 MiB each as JSON)
    /// once made `details doc.txt` too large for a frame, so nobody could
    /// download doc.txt. Now details lists both without manifests, and the
    /// chosen one's manifest comes in parts that hash to its content id.
    @Test func hugeManifestsUnderOneNameStayAvailable() async throws {
        let tracker = try await TestTracker.start()
        var huge: [Manifest] = []
        for seed in 0..<2 {
            let digests = (0..<Self.hugeChunks).map { index -> ChunkDigest in
                var bytes = [UInt8](repeating: UInt8(seed), count: 32)
                bytes[0] = UInt8(index & 0xFF); bytes[1] = UInt8((index >> 8) & 0xFF); bytes[2] = UInt8(index >> 16)
                return ChunkDigest(bytes: bytes)!
            }
            huge.append(try Manifest(fileSize: UInt64(Self.hugeChunks) << 22, chunkSize: 4 << 20, digests: digests))
        }
        var attackers: [FramedConnection] = []
        for (index, manifest) in huge.enumerated() {
            let connection = try await tracker.connect()
            let token = try await connection.signUp("big\(index)")
            try await connection.announce(token, [("doc.txt", manifest)])
            attackers.append(connection)
        }
        let honest = try await tracker.connect()
        let small = sampleManifest(7)
        try await honest.announce(try await honest.signUp("honest"), [("doc.txt", small)])

        let reader = try await session(tracker, "reader")
        let details = try await reader.details(name: "doc.txt")
        #expect(details.files.count == 3)
        #expect(details.files.map(\.contentID) == huge.map(\.contentID) + [small.contentID], "oldest first")
        #expect(details.files.allSatisfy { $0.manifest == nil })
        let chosen = try #require(try await reader.details(contentID: small.contentID).first)
        #expect(try chosen.manifest?.manifest(expecting: small.contentID) == small)
        let big = try #require(try await reader.details(contentID: huge[1].contentID).first)
        #expect(try big.manifest?.manifest(expecting: huge[1].contentID).chunkCount == Self.hugeChunks)
        await reader.logout()
        for connection in attackers + [honest] { connection.close() }
        await tracker.stopAndRemove()
    }

    /// `status` lists every account and every file, a page at a time: 10,000
    /// accounts or files once made it too large too.
    @Test(arguments: TestStore.allCases) func statusComesInPages(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let client = try await tracker.connect()
        for i in 0..<600 { try await client.register(String(format: "user%03d", i), "pw") }
        let token = try await client.login("user000", "pw")
        try await client.announce(token, (0..<100).map { (String(format: "file%03d", $0), tinyManifest($0 + 1)) })
        var status = try await client.status(operatorToken: tracker.operatorToken)
        #expect(status.registered == 600)
        #expect(status.peers.count == 256 && status.files.count == 64)
        var peers = status.peers.map(\.user), files = status.files.map(\.name)
        while let after = status.nextPeers {
            status = try await client.status(StatusRequest(token: tracker.operatorToken, peersAfter: after))
            #expect(status.files.isEmpty)
            peers += status.peers.map(\.user)
        }
        status = try await client.status(operatorToken: tracker.operatorToken)
        while let after = status.nextFiles {
            status = try await client.status(StatusRequest(token: tracker.operatorToken, filesAfter: after))
            #expect(status.peers.isEmpty)
            files += status.files.map(\.name)
        }
        #expect(peers == (0..<600).map { String(format: "user%03d", $0) })
        #expect(files == (0..<100).map { String(format: "file%03d", $0) })
        client.close()
        await tracker.stopAndRemove()
    }
}
