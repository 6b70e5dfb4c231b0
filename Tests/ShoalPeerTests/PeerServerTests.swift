import Foundation
import NIOCore
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalTestSupport
import ShoalWire
import Testing

/// The peer server refuses what it must, and keeps serving others.
@Suite("Peer server", .timeLimit(.minutes(2)))
struct PeerServerTests {
    /// Unknown contents, out-of-range chunks and non-requests get clear errors; the connection goes on.
    @Test func refusals() async throws {
        let swarm = try await TestSwarm()
        let folder = try swarm.folder("s", files: ["notes.txt": Fixtures.bytes("peer_1/notes.txt")])
        let peer = try await swarm.peer("s", folder: folder)
        let manifest = try ManifestBuilder().build(path: folder + "/notes.txt")
        let client = try await FramedConnection.connect(host: "127.0.0.1", port: peer.server.port, role: "peer")

        // A content it does not share: e.g. the id of a file outside its folder.
        let outside = try ManifestBuilder().build(path: Fixtures.path("peer_2/report.txt"))
        #expect(await refusalCode { _ = try await client.request(.chunkRequest(ChunkRequest(contentID: outside.contentID, index: 0))) } == "unavailable")
        #expect(await refusalCode { _ = try await client.request(.chunkRequest(ChunkRequest(contentID: manifest.contentID, index: 1))) } == "bad_request")
        #expect(await refusalCode { _ = try await client.request(.list(ListFiles(token: "x"))) } == "bad_request")

        // It still serves the real chunk, verified.
        guard case let .chunkData(data) = try await client.request(.chunkRequest(ChunkRequest(contentID: manifest.contentID, index: 0))) else {
            Issue.record("no chunk")
            return
        }
        #expect(data.isCompressed, "text travels compressed")
        #expect(try data.verifiedBytes(against: manifest, inflater: Inflater()) == Fixtures.bytes("peer_1/notes.txt"))
        client.close()

        // A broken frame closes that connection only, with an error.
        let socket = try RawSocket(port: peer.server.port)
        socket.send(Fixtures.bytes("frames/broken/wrong-version.frame"))
        let (bytes, closed) = await socket.readUntilClosedAsync()
        #expect(closed && !bytes.isEmpty)
        let again = try await FramedConnection.connect(host: "127.0.0.1", port: peer.server.port, role: "peer")
        _ = try await again.request(.checkActive(CheckActive(nonce: 5)))
        again.close()
        await swarm.stop()
    }

    /// Chunks go out from the file itself (sendfile). A file that shrank on
    /// disk after it was shared gets a clear refusal for the chunks it lost,
    /// not a connection that waits forever; the chunks still there are served.
    @Test func aFileThatShrankIsRefusedClearly() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(600_000, seed: 41)
        let folder = try swarm.folder("s", files: ["data.bin": bytes])
        let peer = try await swarm.peer("s", folder: folder)
        let manifest = try ManifestBuilder().build(path: folder + "/data.bin")
        #expect(manifest.chunkCount == 3)
        let client = try await FramedConnection.connect(host: "127.0.0.1", port: peer.server.port, role: "peer")

        #expect(truncate(folder + "/data.bin", 300_000) == 0)
        let message = await refusalMessage { _ = try await client.request(.chunkRequest(ChunkRequest(contentID: manifest.contentID, index: 2))) }
        #expect(message?.contains("changed on disk") == true, "\(message ?? "no refusal")")
        guard case let .chunkData(data) = try await client.request(.chunkRequest(ChunkRequest(contentID: manifest.contentID, index: 0)), timeout: .seconds(10)) else {
            Issue.record("no chunk")
            return
        }
        #expect(!data.isCompressed, "random bytes travel stored")
        #expect(try data.verifiedBytes(against: manifest, inflater: Inflater()) == Array(bytes[0..<manifest.length(ofChunk: 0)]))
        client.close()
        await swarm.stop()
    }

    /// Only regular files directly in the folder with valid names are shared:
    /// no hidden files, no symbolic links out of the folder, no subfolders.
    @Test func onlyTheFolderIsShared() async throws {
        let swarm = try await TestSwarm()
        let folder = try swarm.folder("s", files: ["ok.txt": Array("fine".utf8), ".hidden": Array("secret".utf8)])
        try FileManager.default.createSymbolicLink(atPath: folder + "/escape.txt", withDestinationPath: Fixtures.path("peer_2/report.txt"))
        try FileManager.default.createDirectory(atPath: folder + "/sub", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: folder + "/sub/inner.txt", contents: Data("inner".utf8))
        let peer = try await swarm.peer("s", folder: folder)
        #expect(peer.library.announcement().map(\.name) == ["ok.txt"])
        let list = try await peer.session.list()
        #expect(list.map(\.name) == ["ok.txt"])
        await swarm.stop()
    }
}
