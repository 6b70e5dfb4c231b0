import Logging
import NIOCore
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalWire
import Testing

/// A holder that floods frames nobody asked for costs its downloader no
/// memory: they are skipped as they stream in.
@Suite("Unsolicited frames", .timeLimit(.minutes(1)))
struct UnsolicitedFrameTests {
    static let chunk = 4 << 20
    static let flood = 8

    /// A lying holder: on each chunk request, `flood` chunk frames of 4 MiB
    /// under request ids nobody used, then the chunk asked for.
    func floodingHolder() async throws -> (FramedServer, Task<Void, Never>) {
        let server = try await FramedServer.bind(host: "127.0.0.1", port: 0)
        let task = Task {
            await server.run { connection in
                try? await connection.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "peer")
                    while let frame = try await iterator.next() {
                        let request = try ChunkRequest(frame: frame)
                        let data = ByteBuffer(repeating: 0x55, count: Self.chunk)
                        let chunk = ChunkData(contentID: request.contentID, index: request.index, rawLength: UInt32(Self.chunk), isCompressed: false, data: data)
                        for i in 0..<Self.flood {
                            try await outbound.write(chunk.frame(requestID: frame.requestID + 1000 + UInt32(i)))
                        }
                        try await outbound.write(chunk.frame(requestID: frame.requestID))
                    }
                }
            }
        }
        return (server, task)
    }

    /// Eight unsolicited 4 MiB chunks, then the one requested: the requested
    /// one arrives whole, the others are counted as skipped, and the bytes
    /// allocated for payloads are those of the one chunk asked for, not nine.
    @Test func unsolicitedChunksAreSkippedWithoutAllocating() async throws {
        let (server, task) = try await floodingHolder()
        let frameSize = ChunkData.headerSize + Self.chunk
        // As a downloader connects: its own chunks may be preallocated whole.
        let connection = try await FramedConnection.connect(host: "127.0.0.1", port: server.port, role: "peer",
                                                            maximumPayloadLength: frameSize, preallocationLimit: frameSize)
        let id = ContentIDFixture.some
        let reply = try await connection.requestFrame { requestID in ChunkRequest(contentID: id, index: 3).frame(requestID: requestID) }
        let data = try ChunkData(frame: reply)
        #expect(data.index == 3 && data.data.readableBytes == Self.chunk)

        let statistics = connection.receiveStatistics
        #expect(statistics.dropped.frames == Self.flood)
        #expect(statistics.dropped.bytes == Self.flood * (FrameHeader.size + frameSize))
        #expect(statistics.allocatedBytes <= 2 * frameSize, "\(statistics.allocatedBytes) bytes allocated for one chunk asked for")

        // Again: what was allocated grows by one chunk, never by the flood.
        let before = statistics.allocatedBytes
        _ = try await connection.requestFrame { requestID in ChunkRequest(contentID: id, index: 4).frame(requestID: requestID) }
        #expect(statistics.dropped.frames == 2 * Self.flood)
        #expect(statistics.allocatedBytes - before <= 2 * frameSize)
        connection.close()
        server.shutdown()
        await task.value
    }
}

/// The same, through a whole download: a holder listed by the tracker that
/// floods its downloader with unsolicited chunks.
@Suite("Unsolicited frames in a download", .timeLimit(.minutes(2)))
struct UnsolicitedDownloadTests {
    /// A lying holder: sends 64 unsolicited chunks of 256 KiB (16 MiB) before
    /// it answers the downloader's hello, and refuses every chunk request.
    func liar(chunk: Int, flood: Int) async throws -> (FramedServer, Task<Void, Never>) {
        let server = try await FramedServer.bind(host: "127.0.0.1", port: 0, setup: { FramedServer.ConnectionSetup() })
        let task = Task {
            await server.run { connection in
                try? await connection.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    let junk = ChunkData(contentID: ContentIDFixture.some, index: 0, rawLength: UInt32(chunk), isCompressed: false,
                                         data: ByteBuffer(repeating: 0x55, count: chunk))
                    for i in 0..<flood { try await outbound.write(junk.frame(requestID: 1000 + UInt32(i))) }
                    _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "peer")
                    while let frame = try await iterator.next() {
                        if frame.type == .checkActive, let probe = try? CheckActive(frame: frame) {
                            try await outbound.write(try Active(nonce: probe.nonce).frame(requestID: frame.requestID))
                        } else {
                            try await outbound.write(try ErrorReply(code: .unavailable, message: "no").frame(requestID: frame.requestID))
                        }
                    }
                }
            }
        }
        return (server, task)
    }

    /// The download completes from the honest holder; the downloader skipped
    /// every one of the liar's frames it read (not always all 64: its
    /// requests do not wait for the liar's hello, which comes after the
    /// flood), and what it allocated for chunk payloads is its own chunks'
    /// buffers (and a few copies asked twice near the end), well under what
    /// the flood would have taken. NIO sizes a buffer to a power of two, so
    /// a 256 KiB chunk's frame (its header makes it a little more) takes
    /// 512 KiB: the file's 16 chunks 8 MiB, the flood's 64 would take 32 MiB.
    @Test func aFloodingHolderCostsTheDownloaderNoMemory() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(4 << 20, seed: 11)
        let good = try swarm.folder("good", files: ["f.bin": bytes])
        let manifest = try ManifestBuilder().build(path: good + "/f.bin")
        let chunk = Int(manifest.chunkSize)
        let flood = 64
        let (server, task) = try await liar(chunk: chunk, flood: flood)
        try await TrackerSession.register(endpoint: swarm.endpoint, trust: swarm.tracker.trust, user: "liar", password: "pw-liar")
        let session = try await TrackerSession.login(endpoint: swarm.endpoint, trust: swarm.tracker.trust, user: "liar", password: "pw-liar", servePort: server.port,
                                                     serveHost: "127.0.0.1", logger: Logger(label: "liar"))
        try await session.announce([AnnouncedFile(name: "f.bin", contentID: manifest.contentID, manifest: ManifestPayload(manifest))])
        _ = try await swarm.peer("good", folder: good)

        let statistics = FrameStatistics()
        let downloader = try await swarm.peer("d", folder: try swarm.folder("d")) { $0.receiveStatistics = statistics }
        let result = try await downloader.download(name: "f.bin")
        #expect(sha256(ofFile: try swarm.folder("d") + "/f.bin") == ChunkDigest(hashing: bytes).hex)
        #expect(result.holders.first { $0.user == "good" }?.chunks == manifest.chunkCount)
        // Requests follow the hello at once, so the file may be in, and the
        // liar's connection closed, before the whole flood was read.
        #expect(statistics.dropped.frames >= 1, "the liar's frames were skipped")
        #expect(statistics.dropped.bytes == statistics.dropped.frames * (FrameHeader.size + chunk + ChunkData.headerSize),
                "only the liar's whole frames were skipped: \(statistics.dropped)")
        let payload = ChunkData.headerSize + chunk
        let buffer = 1 << (Int.bitWidth - (payload - 1).leadingZeroBitCount)
        #expect(statistics.allocatedBytes <= 3 * manifest.chunkCount / 2 * buffer,
                "\(statistics.allocatedBytes) bytes allocated for \(manifest.chunkCount) chunks of \(buffer)-byte buffers")
        await session.logout()
        server.shutdown()
        await task.value
        await swarm.stop()
    }
}

enum ContentIDFixture {
    static let some = ContentID(bytes: [UInt8](repeating: 7, count: 32))!
}
