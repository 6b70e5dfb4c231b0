import NIOCore
import ShoalCore

/// `chunkRequest`: ask a peer for one chunk. Binary, 36 bytes:
///
/// ```
///   0                              32          36
///   +------------------------------+-----------+
///   | content id (32 bytes)        | index u32 |
///   +------------------------------+-----------+
/// ```
/// Answered by `chunkData` with the same request id, or an `error`
/// (`unavailable`, `bad_request`). Requests may be pipelined; replies come back
/// in request order. With the frame flag `stored` the chunk is asked for
/// uncompressed (the downloader's link is faster than its inflate).
public struct ChunkRequest: Hashable, Sendable {
    public static let payloadSize = 36
    public var contentID: ContentID
    public var index: UInt32
    /// Whether the chunk should come stored rather than compressed.
    public var stored: Bool

    public init(contentID: ContentID, index: UInt32, stored: Bool = false) {
        self.contentID = contentID
        self.index = index
        self.stored = stored
    }

    public func frame(requestID: UInt32, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> Frame {
        Self.frame(type: .chunkRequest, flags: stored ? [.stored] : [], contentID: contentID, index: index, requestID: requestID, allocator: allocator)
    }

    public init(frame: Frame) throws(WireError) {
        let (contentID, index) = try Self.decode(frame, as: .chunkRequest)
        self.init(contentID: contentID, index: index, stored: frame.header.flags.contains(.stored))
    }

    /// The 36-byte layout shared by `chunkRequest` and `chunkCancel`.
    static func frame(type: MessageType, flags: FrameFlags, contentID: ContentID, index: UInt32, requestID: UInt32,
                      allocator: ByteBufferAllocator) -> Frame {
        var buffer = allocator.buffer(capacity: payloadSize)
        buffer.writeBytes(contentID.bytes)
        buffer.writeInteger(index)
        return Frame(type: type, flags: flags, requestID: requestID, payload: buffer)
    }

    static func decode(_ frame: Frame, as type: MessageType) throws(WireError) -> (ContentID, UInt32) {
        guard frame.type == type else {
            throw .malformedPayload(type: type.description, reason: "the frame is a \(frame.type)")
        }
        var payload = frame.payload
        guard payload.readableBytes == payloadSize,
              let idBytes = payload.readBytes(length: 32),
              let contentID = ContentID(bytes: idBytes),
              let index = payload.readInteger(as: UInt32.self) else {
            throw .malformedPayload(type: type.description, reason: "the payload is \(frame.payload.readableBytes) bytes, not \(payloadSize)")
        }
        return (contentID, index)
    }
}

/// `chunkCancel`: the downloader no longer wants the chunk it asked for in
/// the `chunkRequest` whose request id this frame carries (another holder's
/// copy came first). The same 36 bytes as that request. No reply: a holder
/// that has not started sending the chunk skips it and sends nothing for
/// that request; one that has, finishes it, and the downloader drops it.
public struct ChunkCancel: Hashable, Sendable {
    public var contentID: ContentID
    public var index: UInt32

    public init(contentID: ContentID, index: UInt32) {
        self.contentID = contentID
        self.index = index
    }

    /// The cancel of the request `requestID`.
    public func frame(requestID: UInt32, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> Frame {
        ChunkRequest.frame(type: .chunkCancel, flags: [], contentID: contentID, index: index, requestID: requestID, allocator: allocator)
    }

    public init(frame: Frame) throws(WireError) {
        (contentID, index) = try ChunkRequest.decode(frame, as: .chunkCancel)
    }
}

/// `chunkData`: one chunk's bytes. Binary:
///
/// ```
///   0                              32          36             40
///   +------------------------------+-----------+--------------+------ ...
///   | content id (32 bytes)        | index u32 | raw length   | data
///   |                              |           | u32          |
///   +------------------------------+-----------+--------------+------ ...
/// ```
/// With the frame flag `compressed`, `data` is a zlib (RFC 1950) stream that
/// inflates to exactly `raw length` bytes; without it, `data` is the raw bytes.
/// The receiver checks the raw length against the manifest before inflating,
/// inflates with that bound and checks the SHA-256 before the chunk counts.
public struct ChunkData: Hashable, Sendable {
    /// The bytes in front of the data.
    public static let headerSize = 40
    public var contentID: ContentID
    public var index: UInt32
    /// The chunk's length once inflated.
    public var rawLength: UInt32
    /// Whether `data` is a zlib stream.
    public var isCompressed: Bool
    /// The data as it travelled.
    public var data: ByteBuffer

    public init(contentID: ContentID, index: UInt32, rawLength: UInt32, isCompressed: Bool, data: ByteBuffer) {
        self.contentID = contentID
        self.index = index
        self.rawLength = rawLength
        self.isCompressed = isCompressed
        self.data = data
    }

    /// Writes the 40 bytes in front of the data.
    public static func writeHeader(contentID: ContentID, index: UInt32, rawLength: UInt32, to buffer: inout ByteBuffer) {
        buffer.writeBytes(contentID.bytes)
        buffer.writeInteger(index)
        buffer.writeInteger(rawLength)
    }

    /// Encodes `bytes` as chunk `index`, compressing through `compressor` when
    /// that pays; stored when there is no compressor.
    public static func frame(
        contentID: ContentID, index: UInt32, bytes: UnsafeRawBufferPointer,
        compressor: ChunkCompressor?, requestID: UInt32, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> Frame {
        var buffer = allocator.buffer(capacity: headerSize + bytes.count)
        writeHeader(contentID: contentID, index: index, rawLength: UInt32(bytes.count), to: &buffer)
        guard let compressor else {
            buffer.writeBytes(bytes)
            return Frame(type: .chunkData, requestID: requestID, payload: buffer)
        }
        let outcome = compressor.encode(bytes, key: .init(contentID: contentID, index: index), into: &buffer)
        return Frame(type: .chunkData, flags: outcome == .stored ? [] : [.compressed], requestID: requestID, payload: buffer)
    }

    /// Encodes data prepared earlier (for instance a chunk compressed once and
    /// cached by a seeder).
    public func frame(requestID: UInt32, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> Frame {
        var buffer = allocator.buffer(capacity: Self.headerSize + data.readableBytes)
        Self.writeHeader(contentID: contentID, index: index, rawLength: rawLength, to: &buffer)
        var data = data
        buffer.writeBuffer(&data)
        return Frame(type: .chunkData, flags: isCompressed ? [.compressed] : [], requestID: requestID, payload: buffer)
    }

    public init(frame: Frame) throws(WireError) {
        guard frame.type == .chunkData else {
            throw .malformedPayload(type: "chunkData", reason: "the frame is a \(frame.type)")
        }
        var payload = frame.payload
        guard payload.readableBytes >= Self.headerSize,
              let idBytes = payload.readBytes(length: 32),
              let contentID = ContentID(bytes: idBytes),
              let index = payload.readInteger(as: UInt32.self),
              let rawLength = payload.readInteger(as: UInt32.self) else {
            throw .malformedPayload(type: "chunkData", reason: "the payload is \(frame.payload.readableBytes) bytes, shorter than its \(Self.headerSize)-byte header")
        }
        self.init(contentID: contentID, index: index, rawLength: rawLength, isCompressed: frame.header.flags.contains(.compressed), data: payload)
    }

    /// The chunk's raw bytes, checked against `manifest`: the declared length
    /// first (before any allocation), then a bounded inflate, then SHA-256.
    public func verifiedBytes(against manifest: Manifest, inflater: Inflater) throws(WireError) -> [UInt8] {
        var out = [UInt8]()
        try verify(against: manifest, inflater: inflater) { (count, fill) throws(WireError) in
            out = [UInt8](repeating: 0, count: count)
            let result = out.withUnsafeMutableBytes { buffer in
                Result { () throws(WireError) in try fill(buffer) }
            }
            try result.get()
        }
        return out
    }

    /// Like ``verifiedBytes(against:inflater:)`` but into a caller's buffer,
    /// which must hold at least the chunk's length; returns the length.
    public func verify(against manifest: Manifest, inflater: Inflater, into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        var length = 0
        try verify(against: manifest, inflater: inflater) { (count, fill) throws(WireError) in
            precondition(buffer.count >= count, "buffer smaller than the chunk")
            length = count
            try fill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        }
        return length
    }

    /// Verifies the chunk and calls `body` with its raw bytes, copying nothing
    /// when the chunk travelled stored (the bytes are hashed where they are in
    /// the frame); a compressed chunk is inflated into the buffer `scratch`
    /// gives (which must hold the chunk's length) with the inflater it gives.
    public func withVerifiedBytes<T>(
        against manifest: Manifest, scratch: () -> (UnsafeMutableRawBufferPointer, Inflater),
        _ body: (UnsafeRawBufferPointer) throws -> T
    ) throws -> T {
        guard !isCompressed else {
            let (buffer, inflater) = scratch()
            let length = try verify(against: manifest, inflater: inflater, into: buffer)
            return try body(UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
        }
        try checkHeader(against: manifest)
        let i = Int(index)
        let expected = manifest.length(ofChunk: i)
        return try data.withUnsafeReadableBytes { bytes in
            guard bytes.count == expected else {
                throw WireError.chunkLengthMismatch(index: i, expected: expected, declared: bytes.count)
            }
            let actual = ChunkDigest(hashing: bytes)
            guard actual == manifest.digests[i] else {
                throw WireError.chunkHashMismatch(index: i, expected: manifest.digests[i], actual: actual)
            }
            return try body(bytes)
        }
    }

    private func checkHeader(against manifest: Manifest) throws(WireError) {
        guard contentID == manifest.contentID else {
            throw .unexpectedChunk(expected: "a chunk of \(manifest.contentID.short)", received: "a chunk of \(contentID.short)")
        }
        guard Int(index) < manifest.chunkCount else {
            throw .unexpectedChunk(expected: "a chunk index below \(manifest.chunkCount)", received: "chunk \(index)")
        }
        let expected = manifest.length(ofChunk: Int(index))
        guard Int(rawLength) == expected else {
            throw .chunkLengthMismatch(index: Int(index), expected: expected, declared: Int(rawLength))
        }
    }

    private func verify(
        against manifest: Manifest, inflater: Inflater,
        provide: (Int, (UnsafeMutableRawBufferPointer) throws(WireError) -> Void) throws(WireError) -> Void
    ) throws(WireError) {
        try checkHeader(against: manifest)
        let i = Int(index)
        let expected = manifest.length(ofChunk: i)
        let isCompressed = isCompressed
        let data = data
        try provide(expected) { (output) throws(WireError) in
            let copied = data.withUnsafeReadableBytes { input in
                Result { () throws(WireError) in
                    if isCompressed {
                        try inflater.inflate(input, into: output)
                    } else {
                        guard input.count == expected else {
                            throw .chunkLengthMismatch(index: i, expected: expected, declared: input.count)
                        }
                        output.copyMemory(from: input)
                    }
                }
            }
            try copied.get()
            let actual = ChunkDigest(hashing: UnsafeRawBufferPointer(output))
            guard actual == manifest.digests[i] else {
                throw .chunkHashMismatch(index: i, expected: manifest.digests[i], actual: actual)
            }
        }
    }
}
