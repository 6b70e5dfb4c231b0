import Foundation
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalTestSupport
import ShoalWire
import Testing

/// Peer links with `--encrypt`: TLS with each holder's own key, pinned to
/// the fingerprint the tracker lists for it.
@Suite("encrypted peer links", .timeLimit(.minutes(3)))
struct EncryptedLinkTests {
    /// Two encrypting seeders, an encrypting downloader and a plain one: the
    /// tracker lists each seeder's key, both downloads are byte-identical,
    /// and a seeder with `--encrypt` answers a downloader in clear with a refusal.
    @Test func encryptedDownloadIsByteIdentical() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(6 << 20, seed: 10)
        var seeders: [Peer] = []
        for i in 1...2 {
            seeders.append(try await swarm.peer("seeder\(i)", folder: try swarm.folder("seeder\(i)", files: ["secret.bin": bytes]), encrypt: true))
        }
        let downloader = try await swarm.peer("downloader", folder: try swarm.folder("downloader"), encrypt: true)
        let details = try await downloader.session.details(name: "secret.bin")
        for (i, seeder) in seeders.enumerated() {
            let listed = details.files.first?.holders.first { $0.user == "seeder\(i + 1)" }?.keyFingerprint
            #expect(listed != nil && listed == seeder.server.identity?.fingerprint.hex)
        }
        let result = try await downloader.download(name: "secret.bin")
        #expect(sha256(ofFile: try swarm.folder("downloader") + "/secret.bin") == ChunkDigest(hashing: bytes).hex)
        #expect(result.holders.filter { $0.chunks > 0 }.count >= 1)
        #expect(seeders.map { $0.library.served.chunks }.reduce(0, +) >= result.fetchedChunks)

        // A peer without --encrypt still reaches them over TLS, from the listed keys.
        let plain = try await swarm.peer("plain", folder: try swarm.folder("plain"))
        _ = try await plain.download(name: "secret.bin")
        #expect(sha256(ofFile: try swarm.folder("plain") + "/secret.bin") == ChunkDigest(hashing: bytes).hex)

        // A client that ignores the key and speaks in clear is refused, with the reason.
        let message = await refusalMessage {
            _ = try await FramedConnection.connect(host: "127.0.0.1", port: seeders[0].server.port, role: "peer")
        }
        #expect(message?.contains("serves its chunks over TLS only") == true, "\(message ?? "connected in clear")")
        await swarm.stop()
    }

    /// A holder whose server presents another key than the one the tracker
    /// lists for it is refused: the download comes from the honest holder
    /// only, and the refusal says why.
    @Test func holderWithAnotherKeyIsRefused() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(2 << 20, seed: 11)
        let honest = try await swarm.peer("honest", folder: try swarm.folder("honest", files: ["f.bin": bytes]), encrypt: true)
        // "liar" logs in listing a key it does not hold, at the honest peer's address.
        let liar = try await swarm.tracker.connect()
        defer { liar.close() }
        try await liar.register("liar", "pw")
        let claimed = try TLSIdentity.generate(commonName: "not the server's").fingerprint
        guard case let .loggedIn(reply) = try await liar.request(.login(Login(user: "liar", password: "pw", port: honest.server.port, keyFingerprint: claimed.hex))) else {
            Issue.record("liar could not log in")
            return
        }
        let shared = try #require(honest.library.announcement().first)
        let manifest = try #require(honest.library.manifest(of: shared.contentID))
        try await liar.announce(reply.token, [("f.bin", manifest)])

        let downloader = try await swarm.peer("d", folder: try swarm.folder("d"), encrypt: true)
        let listed = try await downloader.session.details(name: "f.bin").files.first?.holders.map(\.user).sorted()
        #expect(listed == ["honest", "liar"])
        let result = try await downloader.download(name: "f.bin")
        #expect(sha256(ofFile: try swarm.folder("d") + "/f.bin") == ChunkDigest(hashing: bytes).hex)
        #expect(result.holders.first { $0.user == "liar" }.map { $0.chunks } ?? 0 == 0)
        #expect(swarm.log.contains("not downloading from liar"), "\(swarm.log.all.suffix(10))")
        #expect(swarm.log.contains("cannot prove the key the tracker lists for it"))
        await swarm.stop()
    }

    /// A downloader with `--encrypt` passes over a holder that serves in
    /// clear, saying why, and fails rather than download in clear.
    @Test func encryptedDownloaderRefusesClearHolder() async throws {
        let swarm = try await TestSwarm()
        _ = try await swarm.peer("clear", folder: try swarm.folder("clear", files: ["f.bin": randomBytes(100_000, seed: 12)]))
        let downloader = try await swarm.peer("d", folder: try swarm.folder("d"), encrypt: true) { $0.patience = 1 }
        await #expect(throws: (any Error).self) { _ = try await downloader.download(name: "f.bin") }
        #expect(swarm.log.contains("not downloading from clear"))
        #expect(swarm.log.contains("it serves in clear, and this peer runs with --encrypt"))
        #expect(!FileManager.default.fileExists(atPath: try swarm.folder("d") + "/f.bin"))
        await swarm.stop()
    }
}
