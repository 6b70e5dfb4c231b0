import Foundation
import NIOCore
import NIOEmbedded
import NIOTestUtils
import ShoalCore
import ShoalTestSupport
import ShoalWire
import Testing

@Suite("Frame decoder")
struct FrameDecoderTests {
    static func sampleFrames(chunkBytes: Int = 70_000) -> [Frame] {
        var generator = SeededGenerator(seed: 11)
        return [
            try! CheckActive(nonce: 1).frame(requestID: 1),
            try! Hello(role: "peer", software: "test").frame(requestID: 0),
            Frame(type: .chunkData, flags: [.compressed], requestID: 99, payload: ByteBuffer(bytes: generator.bytes(chunkBytes))),
            Frame(type: .loggedOut, requestID: 5, payload: ByteBuffer(string: "{}")),
            Frame(type: .chunkRequest, requestID: 6, payload: ByteBuffer(bytes: generator.bytes(36))),
        ]
    }

    /// Frames come out the same whether bytes arrive one at a time, all at once, or in random pieces.
    @Test func anyReadBoundaries() throws {
        let frames = Self.sampleFrames()
        var stream = ByteBuffer()
        for frame in frames { frame.write(to: &stream) }

        for seed in UInt64(0)..<50 {
            var generator = SeededGenerator(seed: seed)
            var decoder = FrameDecoder()
            var decoded: [Frame] = []
            var input = ByteBuffer()
            var rest = stream
            while rest.readableBytes > 0 {
                let n = seed == 0 ? 1 : Int.random(in: 1...max(1, rest.readableBytes), using: &generator)
                var piece = rest.readSlice(length: min(n, rest.readableBytes))!
                input.writeBuffer(&piece)
                while let frame = try decoder.decode(buffer: &input) { decoded.append(frame) }
            }
            #expect(decoded == frames, "seed \(seed)")
            #expect(try decoder.decodeLast(buffer: &input, seenEOF: true) == nil)
        }
    }

    /// A chunk-sized payload arriving 64 KiB at a time is assembled in a
    /// buffer of its own, and the frame after it decodes as usual;
    /// cut short, it is a truncated frame that says how much arrived.
    /// A decoder told which frames are awaited skips the others as they
    /// stream in, in reads of any size: a chunk nobody asked for is
    /// never buffered or allocated, and the frames around it come out whole.
    @Test(arguments: [1, 7, 4096, 65_536])
    func framesNotAwaitedAreSkippedUnread(readSize: Int) async throws {
        var generator = SeededGenerator(seed: 6)
        let unsolicited = Frame(type: .chunkData, requestID: 99, payload: ByteBuffer(bytes: generator.bytes(300_040)))
        let empty = Frame(type: .chunkData, requestID: 97, payload: ByteBuffer())
        let probe = try CheckActive(nonce: 9).frame(requestID: 8)
        let reply = Frame(type: .chunkData, requestID: 7, payload: ByteBuffer(bytes: generator.bytes(100_000)))
        var stream = ByteBuffer()
        for frame in [probe, unsolicited, empty, reply, unsolicited] { frame.write(to: &stream) }

        let statistics = FrameStatistics()
        var decoder = FrameDecoder(preallocationLimit: 2 << 20, accepts: { $0.requestID < 50 }, statistics: statistics)
        var decoded: [Frame] = []
        var input = ByteBuffer()
        var leftUnread = 0
        var reads = 0
        while stream.readableBytes > 0 {
            var piece = stream.readSlice(length: min(readSize, stream.readableBytes))!
            input.writeBuffer(&piece)
            while let frame = try decoder.decode(buffer: &input) { decoded.append(frame) }
            input.discardReadBytes()
            if input.readableBytes >= FrameHeader.size && decoder.reservedBytes == 0 { leftUnread += 1 }
            // Hundreds of thousands of reads: let the other tests' tasks run meanwhile.
            reads += 1
            if reads % 4096 == 0 { await Task.yield() }
        }
        #expect(leftUnread == 0, "bytes left unread after \(leftUnread) of \(reads) reads")
        #expect(try decoder.decodeLast(buffer: &input, seenEOF: true) == nil)
        #expect(decoded == [probe, reply])
        #expect(statistics.dropped.frames == 3)
        #expect(statistics.dropped.bytes == 2 * unsolicited.encoded().readableBytes + FrameHeader.size)
        #expect(statistics.allocatedBytes <= (readSize > 100_000 ? 0 : 2 * 100_000), "only the awaited reply is assembled")
    }

    @Test func largePayloadsAreAssembledInTheirOwnBuffer() throws {
        var generator = SeededGenerator(seed: 5)
        let big = Frame(type: .chunkData, requestID: 7, payload: ByteBuffer(bytes: generator.bytes((1 << 20) + 40)))
        let small = try CheckActive(nonce: 9).frame(requestID: 8)
        var stream = ByteBuffer()
        big.write(to: &stream)
        small.write(to: &stream)

        var decoder = FrameDecoder(preallocationLimit: 2 << 20)
        var decoded: [Frame] = []
        var input = ByteBuffer()
        while stream.readableBytes > 0 {
            var piece = stream.readSlice(length: min(65_536, stream.readableBytes))!
            input.writeBuffer(&piece)
            while let frame = try decoder.decode(buffer: &input) { decoded.append(frame) }
            if decoded.isEmpty && input.readableBytes == 0 {
                #expect(decoder.reservedBytes >= big.payload.readableBytes, "a client allocates the chunk it asked for at once")
            }
        }
        #expect(decoded == [big, small])
        #expect(decoded.first?.payload.readableBytes == big.payload.readableBytes)

        // By default (a server), a bare header does not allocate its payload:
        // the buffer grows with the bytes that actually arrive.
        var header = ByteBuffer()
        FrameHeader(type: .announce, length: 16 << 20, requestID: 3).write(to: &header)
        header.writeRepeatingByte(0x20, count: 70_000)
        var server = FrameDecoder()
        #expect(try server.decode(buffer: &header) == nil)
        #expect(header.readableBytes == 0, "the received part was taken into the assembly")
        #expect(server.reservedBytes >= 70_000 && server.reservedBytes <= 256 << 10, "reserved \(server.reservedBytes) bytes")

        var cut = big.encoded()
        cut.moveWriterIndex(to: 300_000)
        var truncating = FrameDecoder()
        while try truncating.decode(buffer: &cut) != nil {}
        #expect(throws: WireError.truncatedFrame(expected: FrameHeader.size + (1 << 20) + 40, received: 300_000)) {
            try truncating.decodeLast(buffer: &cut, seenEOF: true)
        }
    }

    /// NIO's own verifier: byte by byte and in batches, the same frames come out.
    @Test func nioDecoderVerifier() throws {
        // Small frames: the verifier tries many splittings of its input.
        let frames = Self.sampleFrames(chunkBytes: 600)
        let pairs = frames.map { ($0.encoded(), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    /// The channel's frame writer puts the same bytes on the wire as
    /// `write(to:)`: small frames as one buffer, large ones as header and
    /// payload side by side (the payload itself, not a copy).
    @Test func writerMatchesWrite() throws {
        let channel = EmbeddedChannel(handler: FrameWriter())
        defer { _ = try? channel.finish() }
        for frame in Self.sampleFrames() {
            try channel.writeOutbound(OutgoingFrame.frame(frame))
            var out = ByteBuffer()
            while let part = try channel.readOutbound(as: IOData.self) {
                guard case var .byteBuffer(bytes) = part else {
                    Issue.record("a frame in memory was written as a file region")
                    continue
                }
                out.writeBuffer(&bytes)
            }
            #expect(out == frame.encoded())
            #expect(out.readableBytes == FrameHeader.size + frame.payload.readableBytes)
        }
    }

    /// A file-backed frame goes out as one buffer (header and start of the
    /// payload) then the file region itself, and the header counts both.
    @Test func writerSendsFileBackedFramesAsHeaderThenRegion() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("shoal-writer-\(getpid())").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: 100_000))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: open(path, O_RDONLY))
        defer { try? handle.close() }
        let start = ByteBuffer(bytes: [1, 2, 3])
        let frame = FileBackedFrame(type: .chunkData, flags: [], requestID: 42, start: start,
                                    rest: FileRegion(fileHandle: handle, readerIndex: 1_000, endIndex: 51_000))
        #expect(OutgoingFrame.fileBacked(frame).wireBytes == FrameHeader.size + 3 + 50_000)

        let channel = EmbeddedChannel(handler: FrameWriter())
        defer { _ = try? channel.finish() }
        try channel.writeOutbound(OutgoingFrame.fileBacked(frame))
        guard case var .byteBuffer(head)? = try channel.readOutbound(as: IOData.self),
              case let .fileRegion(region)? = try channel.readOutbound(as: IOData.self) else {
            Issue.record("expected a buffer then a file region")
            return
        }
        #expect(try channel.readOutbound(as: IOData.self) == nil)
        let header = try #require(try FrameHeader.read(from: &head, maximumPayloadLength: FrameHeader.maximumPayloadLength))
        #expect(header.type == .chunkData && header.requestID == 42 && header.length == 50_003)
        #expect(head.readableBytesView.elementsEqual([1, 2, 3]))
        #expect(region.readerIndex == 1_000 && region.endIndex == 51_000)
    }

    private func decodeAll(_ bytes: [UInt8], limit: Int = FrameHeader.maximumPayloadLength) throws -> [Frame] {
        var decoder = FrameDecoder(maximumPayloadLength: limit)
        var buffer = ByteBuffer(bytes: bytes)
        var frames: [Frame] = []
        while let frame = try decoder.decode(buffer: &buffer) { frames.append(frame) }
        while let frame = try decoder.decodeLast(buffer: &buffer, seenEOF: true) { frames.append(frame) }
        return frames
    }

    /// Each frame broken on purpose gives its own typed error.
    @Test func brokenFramesGiveTypedErrors() throws {
        let cases: [(String, WireError)] = [
            ("wrong-version", .unsupportedVersion(received: 2, supported: 1)),
            ("unknown-type", .unknownMessageType(0x7F)),
            ("oversize-length", .frameTooLarge(length: 0xFFFF_FFF0, limit: FrameHeader.maximumPayloadLength)),
            ("undefined-flags", .unknownFlags(0x01, type: 0x01)),
            ("nonzero-reserved", .nonzeroReserved(1)),
            ("truncated-header", .truncatedFrame(expected: 12, received: 7)),
        ]
        for (name, expected) in cases {
            #expect(throws: expected, "\(name)") { try decodeAll(Fixtures.bytes("frames/broken/\(name).frame")) }
        }
        let truncated = Fixtures.bytes("frames/broken/truncated-payload.frame")
        #expect(throws: WireError.truncatedFrame(expected: truncated.count + 5, received: truncated.count)) {
            try decodeAll(truncated)
        }
    }

    /// An oversize length is refused from the header alone: the payload is never awaited or buffered.
    @Test func oversizeRefusedBeforePayload() throws {
        var decoder = FrameDecoder(maximumPayloadLength: 1024)
        var header = ByteBuffer()
        FrameHeader(type: .announce, length: 1025, requestID: 1).write(to: &header)
        #expect(throws: WireError.frameTooLarge(length: 1025, limit: 1024)) { try decoder.decode(buffer: &header) }
        // Exactly at the limit is fine.
        var ok = ByteBuffer()
        Frame(type: .announce, requestID: 1, payload: ByteBuffer(repeating: 0x20, count: 1024)).write(to: &ok)
        var decoder2 = FrameDecoder(maximumPayloadLength: 1024)
        #expect(try decoder2.decode(buffer: &ok)?.payload.readableBytes == 1024)
    }

    /// Golden frames from the Python generator decode to the expected messages.
    @Test func goldenFramesDecode() throws {
        let hello = try decodeAll(Fixtures.bytes("frames/hello.frame"))
        #expect(try Message(frame: #require(hello.first)) == .hello(Hello(versions: [1], role: "peer", software: "shoal 0.1.0")))
        let error = try decodeAll(Fixtures.bytes("frames/error.frame"))
        #expect(try Message(frame: #require(error.first)) == .error(ErrorReply(code: .notFound, message: "no file named report.txt")))
        #expect(error.first?.requestID == 9)
        let check = try decodeAll(Fixtures.bytes("frames/checkActive.frame"))
        #expect(try Message(frame: #require(check.first)) == .checkActive(CheckActive(nonce: 42)))
    }

    /// Our encoder produces byte-for-byte the golden frames of the specification.
    @Test func encodingMatchesGoldenBytes() throws {
        #expect(Array(buffer: try Hello(versions: [1], role: "peer", software: "shoal 0.1.0").frame(requestID: 0).encoded()) == Fixtures.bytes("frames/hello.frame"))
        #expect(Array(buffer: try HelloAck(version: 1, role: "tracker", software: "shoal 0.1.0").frame(requestID: 0).encoded()) == Fixtures.bytes("frames/helloAck.frame"))
        #expect(Array(buffer: try CheckActive(nonce: 42).frame(requestID: 3).encoded()) == Fixtures.bytes("frames/checkActive.frame"))
        let manifest = try Manifest(canonicalBytes: Fixtures.bytes("frames/notes.txt.manifest"))
        #expect(Array(buffer: ChunkRequest(contentID: manifest.contentID, index: 0).frame(requestID: 7).encoded()) == Fixtures.bytes("frames/chunkRequest.frame"))
    }
}
