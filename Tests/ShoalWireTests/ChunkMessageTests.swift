import NIOCore
import ShoalCore
import ShoalTestSupport
import ShoalWire
import Testing

@Suite("Chunk messages")
struct ChunkMessageTests {
    let manifest = try! Manifest(canonicalBytes: Fixtures.bytes("frames/notes.txt.manifest"))
    let notes = Fixtures.bytes("peer_1/notes.txt")

    private func chunkData(_ name: String) throws -> ChunkData {
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: Fixtures.bytes(name))
        let frame = try #require(try decoder.decode(buffer: &buffer))
        return try ChunkData(frame: frame)
    }

    /// Stored and compressed golden chunks both verify to the file's bytes.
    @Test(arguments: ["frames/chunkData-stored.frame", "frames/chunkData-compressed.frame"])
    func goldenChunksVerify(name: String) throws {
        let data = try chunkData(name)
        #expect(data.isCompressed == name.contains("compressed"))
        #expect(try data.verifiedBytes(against: manifest, inflater: Inflater()) == notes)
    }

    /// Encode then decode round-trips through the compressor, text compressed and random stored.
    @Test func roundTrip() throws {
        var generator = SeededGenerator(seed: 12)
        let random = generator.bytes(40_000)
        for bytes in [notes, random] {
            let m = try ManifestBuilder().build(fileSize: UInt64(bytes.count), reader: MemoryChunkReader(bytes))
            let frame = bytes.withUnsafeBytes {
                ChunkData.frame(contentID: m.contentID, index: 0, bytes: $0, compressor: ChunkCompressor(), requestID: 4)
            }
            #expect(frame.header.flags.contains(.compressed) == (bytes == notes))
            var wire = frame.encoded()
            var decoder = FrameDecoder()
            let decoded = try ChunkData(frame: #require(try decoder.decode(buffer: &wire)))
            #expect(try decoded.verifiedBytes(against: m, inflater: Inflater()) == bytes)
            #expect(decoded.frame(requestID: 4) == frame)
        }
    }

    /// Each defective chunk is refused with the error that names the defect.
    @Test func brokenChunksAreRefused() throws {
        let inflater = Inflater()
        let checks: [(String, (WireError) -> Bool)] = [
            ("chunkData-zip-bomb", { $0 == .inflatedPastDeclaredSize(declared: 26401) }),
            ("chunkData-corrupt-zlib", { if case .corruptCompressedData = $0 { true } else { false } }),
            ("chunkData-truncated-zlib", { if case .corruptCompressedData = $0 { true } else { false } }),
            ("chunkData-bad-hash", { if case .chunkHashMismatch(index: 0, _, _) = $0 { true } else { false } }),
            ("chunkData-lying-length", { $0 == .chunkLengthMismatch(index: 0, expected: 26401, declared: 26406) }),
            ("chunkData-short-data", { $0 == .chunkLengthMismatch(index: 0, expected: 26401, declared: 26391) }),
            ("chunkData-wrong-content", { if case .unexpectedChunk = $0 { true } else { false } }),
            ("chunkData-index-out-of-range", { if case .unexpectedChunk = $0 { true } else { false } }),
        ]
        for (name, matches) in checks {
            let data = try chunkData("frames/broken/\(name).frame")
            do {
                _ = try data.verifiedBytes(against: manifest, inflater: inflater)
                Issue.record("\(name) was accepted")
            } catch {
                #expect(matches(error), "\(name): got \(error)")
            }
        }
    }

    /// Requests round-trip; a short request is refused.
    @Test func chunkRequest() throws {
        let request = ChunkRequest(contentID: manifest.contentID, index: 12)
        #expect(try ChunkRequest(frame: request.frame(requestID: 1)) == request)
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: Fixtures.bytes("frames/broken/chunkRequest-short.frame"))
        let frame = try #require(try decoder.decode(buffer: &buffer))
        #expect(throws: WireError.malformedPayload(type: "chunkRequest", reason: "the payload is 20 bytes, not 36")) {
            try Message(frame: frame)
        }
        let tiny = Frame(type: .chunkData, requestID: 1, payload: ByteBuffer(bytes: [1, 2, 3]))
        #expect(throws: WireError.self) { try ChunkData(frame: tiny) }
    }

    /// The `stored` flag travels on a request, and only there; a cancel is the
    /// request's 36 bytes under the request's id, and nothing else.
    @Test func storedRequestsAndCancels() throws {
        let stored = ChunkRequest(contentID: manifest.contentID, index: 3, stored: true)
        let frame = stored.frame(requestID: 9)
        #expect(frame.header.flags == [.stored])
        var wire = frame.encoded()
        var decoder = FrameDecoder()
        #expect(try ChunkRequest(frame: #require(try decoder.decode(buffer: &wire))) == stored)
        #expect(try ChunkRequest(frame: ChunkRequest(contentID: manifest.contentID, index: 3).frame(requestID: 9)).stored == false)

        let cancel = ChunkCancel(contentID: manifest.contentID, index: 3)
        var cancelWire = cancel.frame(requestID: 9).encoded()
        let decoded = try #require(try decoder.decode(buffer: &cancelWire))
        #expect(decoded.type == .chunkCancel && decoded.requestID == 9)
        #expect(try Message(frame: decoded) == .chunkCancel(cancel))
        #expect(throws: WireError.malformedPayload(type: "chunkCancel", reason: "the payload is 3 bytes, not 36")) {
            try ChunkCancel(frame: Frame(type: .chunkCancel, requestID: 9, payload: ByteBuffer(bytes: [1, 2, 3])))
        }
        // `stored` on anything but a request is an unknown flag: the frame is refused.
        var flagged = Frame(type: .chunkCancel, flags: [.stored], requestID: 9, payload: ByteBuffer(bytes: [UInt8](repeating: 0, count: 36))).encoded()
        #expect(throws: WireError.self) { _ = try decoder.decode(buffer: &flagged) }
    }
}
