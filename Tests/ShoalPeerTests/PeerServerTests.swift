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

    /// The server reads ahead: a `chunkCancel` for a request still queued
    /// means that chunk never goes out; everything else is answered, in order.
    /// A request with `stored` gets its chunk uncompressed.
    @Test func cancelledRequestsAreSkipped() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(40 << 18, seed: 43)   // 40 chunks of 256 KiB
        let text = Fixtures.bytes("peer_1/notes.txt")
        let folder = try swarm.folder("s", files: ["r.bin": bytes, "notes.txt": text])
        let peer = try await swarm.peer("s", folder: folder)
        let manifest = try ManifestBuilder().build(path: folder + "/r.bin")
        let notes = try ManifestBuilder().build(path: folder + "/notes.txt")
        #expect(manifest.chunkCount == 40)

        // Everything in one write, read nothing until the end: the reader sees
        // the cancels while the answering side is still busy with the first chunks.
        var out: [UInt8] = Array(buffer: try Hello(role: "peer", software: "test").frame(requestID: 0).encoded())
        for index in 0..<40 {
            out += Array(buffer: ChunkRequest(contentID: manifest.contentID, index: UInt32(index)).frame(requestID: UInt32(index + 1)).encoded())
        }
        for index in 30..<40 {
            out += Array(buffer: ChunkCancel(contentID: manifest.contentID, index: UInt32(index)).frame(requestID: UInt32(index + 1)).encoded())
        }
        out += Array(buffer: ChunkRequest(contentID: notes.contentID, index: 0, stored: true).frame(requestID: 100).encoded())
        out += Array(buffer: ChunkRequest(contentID: notes.contentID, index: 0).frame(requestID: 101).encoded())
        out += Array(buffer: try CheckActive(nonce: 1).frame(requestID: 200).encoded())
        // Read until the liveness answer (the last request) is in; a long
        // timeout, since a busy machine may take seconds to answer at all.
        let socket = try RawSocket(port: peer.server.port, timeout: 30)
        socket.send(out)
        let (received, _) = await socket.readUntilAsync { bytes in
            var decoder = FrameDecoder()
            var buffer = ByteBuffer(bytes: bytes)
            while let frame = try? decoder.decode(buffer: &buffer) {
                if frame.requestID == 200 { return true }
            }
            return false
        }
        socket.close()

        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: received)
        var replies: [UInt32: Frame] = [:]
        var order: [UInt32] = []
        while let frame = try decoder.decode(buffer: &buffer) {
            replies[frame.requestID] = frame
            order.append(frame.requestID)
        }
        #expect(order.last == 200, "the liveness answer comes last, after every chunk")
        #expect(order == order.sorted(), "replies in request order")
        for id in 1...30 { #expect(replies[UInt32(id)]?.type == .chunkData, "request \(id) unanswered") }
        let skipped = (31...40).filter { replies[UInt32($0)] == nil }
        #expect(skipped.count >= 5, "only \(skipped.count) of 10 cancelled requests were skipped")
        #expect(replies[100]?.header.flags.contains(.compressed) == false, "asked stored, sent compressed")
        #expect(replies[101]?.header.flags.contains(.compressed) == true, "text not compressed by default")
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
        _ = FileManager.default.createFile(atPath: folder + "/sub/inner.txt", contents: Data("inner".utf8))
        let peer = try await swarm.peer("s", folder: folder)
        #expect(peer.library.announcement().map(\.name) == ["ok.txt"])
        let list = try await peer.session.list()
        #expect(list.map(\.name) == ["ok.txt"])
        await swarm.stop()
    }
}
