import NIOCore

/// Cuts a byte stream into ``Frame``s, whatever the read boundaries: a frame
/// split across many reads, or many frames in one read.
///
/// The header is validated as soon as its 12 bytes are in (see
/// ``FrameHeader``), so an oversized length, an unknown type or a wrong version
/// is refused before any payload is buffered. Decompression and payload
/// decoding are later, separate steps.
///
/// A large payload that arrives over many reads (a chunk: up to 4 MiB, read
/// 64 KiB at a time) is assembled in a buffer of its own, allocated once at
/// its full size, taking each read's bytes as they come. Left to the generic
/// cumulation, it would grow a buffer by doubling (reallocating and copying
/// as it goes), slide the next frame's first bytes down to its front after
/// every frame, and pin twice the payload's size in memory while the chunk
/// waits to be verified.
///
/// The buffer is allocated at full size only up to `preallocationLimit`:
/// a server must not let a bare header make it allocate megabytes. Past
/// that, it grows as the bytes arrive. A client raises the limit to the
/// replies it asked for (a downloader: its chunks).
///
/// A client also says which frames it awaits (`accepts`): any other frame
/// (an unsolicited chunk from a lying holder, the late reply to a request
/// given up) is skipped as its bytes stream by, never buffered or allocated
/// for, so the preallocation a client grants its own replies is not granted
/// to whatever the other side chooses to send.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    /// Payloads longer than this, when not already whole in the stream, are
    /// assembled in their own buffer.
    public static let assemblyThreshold = 64 * 1024

    private enum State {
        case waitingForHeader
        case waitingForPayload(FrameHeader)
        /// A large payload part-way in: `payload` holds what has arrived.
        case assembling(FrameHeader, payload: ByteBuffer)
        /// A frame nobody awaits, skipped: `remaining` payload bytes still to come.
        case discarding(remaining: Int)
    }

    private var state = State.waitingForHeader
    private let limit: @Sendable (MessageType) -> Int
    private let preallocationLimit: Int
    private let allocator = ByteBufferAllocator()
    private let accepts: (@Sendable (FrameHeader) -> Bool)?
    /// What this decoder has allocated and skipped, for whoever holds it.
    public let statistics: FrameStatistics

    /// A decoder refusing payloads over `maximumPayloadLength` (at most the protocol's limit).
    ///
    /// - Parameter accepts: whether a frame, by its header, is awaited; one
    ///   that is not is skipped without being buffered. Nil: every frame is.
    public init(maximumPayloadLength: Int = FrameHeader.maximumPayloadLength, preallocationLimit: Int = FrameDecoder.assemblyThreshold,
                accepts: (@Sendable (FrameHeader) -> Bool)? = nil, statistics: FrameStatistics = FrameStatistics()) {
        let limit = min(maximumPayloadLength, FrameHeader.maximumPayloadLength)
        self.limit = { _ in limit }
        self.preallocationLimit = preallocationLimit
        self.accepts = accepts
        self.statistics = statistics
    }

    /// A decoder whose limit depends on the message type (and may change over
    /// the connection's life, e.g. large announces only once logged in). The
    /// protocol's limit always applies on top.
    public init(limit: @escaping @Sendable (MessageType) -> Int, preallocationLimit: Int = FrameDecoder.assemblyThreshold,
                accepts: (@Sendable (FrameHeader) -> Bool)? = nil, statistics: FrameStatistics = FrameStatistics()) {
        self.limit = { min(limit($0), FrameHeader.maximumPayloadLength) }
        self.preallocationLimit = preallocationLimit
        self.accepts = accepts
        self.statistics = statistics
    }

    /// Bytes set aside for a payload being assembled (0 when none): what a
    /// frame received in part costs in memory.
    public var reservedBytes: Int {
        if case let .assembling(_, payload) = state { return payload.capacity }
        return 0
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        try decodeFrame(&buffer)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decodeFrame(&buffer) { return frame }
        // At the end of the stream, anything left is a frame cut short.
        switch state {
        case .waitingForHeader where buffer.readableBytes > 0:
            throw WireError.truncatedFrame(expected: FrameHeader.size, received: buffer.readableBytes)
        case let .waitingForPayload(header):
            throw WireError.truncatedFrame(expected: FrameHeader.size + Int(header.length), received: FrameHeader.size + buffer.readableBytes)
        case let .assembling(header, payload):
            throw WireError.truncatedFrame(expected: FrameHeader.size + Int(header.length), received: FrameHeader.size + payload.readableBytes)
        case .discarding:
            // Cut short, but nobody awaited it.
            return nil
        default:
            return nil
        }
    }

    /// Typed-throwing core shared by both entry points.
    public mutating func decodeFrame(_ buffer: inout ByteBuffer) throws(WireError) -> Frame? {
        // Skipped frames loop back here (a loop, not recursion: one read may hold thousands).
        while true {
            if let frame = try decodeStep(&buffer) { return frame }
            switch state {
            case .waitingForHeader where buffer.readableBytes >= FrameHeader.size: continue
            case let .discarding(remaining) where remaining == 0 || buffer.readableBytes > 0: continue
            default: return nil
            }
        }
    }

    /// One step: a frame, or nil when more bytes are needed or a frame was skipped.
    private mutating func decodeStep(_ buffer: inout ByteBuffer) throws(WireError) -> Frame? {
        switch state {
        case .waitingForHeader:
            guard let header = try FrameHeader.read(from: &buffer, maximumPayloadLength: limit) else {
                return nil
            }
            if let accepts, !accepts(header) {
                statistics.add(droppedFrame: FrameHeader.size + Int(header.length))
                state = .discarding(remaining: Int(header.length))
                return nil
            }
            state = .waitingForPayload(header)
            return takePayload(header, from: &buffer)
        case let .discarding(remaining):
            let skipped = min(remaining, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: skipped)
            state = skipped == remaining ? .waitingForHeader : .discarding(remaining: remaining - skipped)
            return nil
        case let .waitingForPayload(header):
            return takePayload(header, from: &buffer)
        case .assembling(let header, var payload):
            // Out of the state first, so that appending does not copy it.
            state = .waitingForHeader
            let wanted = Int(header.length) - payload.readableBytes
            var part = buffer.readSlice(length: min(wanted, buffer.readableBytes))!
            payload.writeBuffer(&part)
            guard payload.readableBytes == Int(header.length) else {
                state = .assembling(header, payload: payload)
                return nil
            }
            return Frame(header: header, payload: payload)
        }
    }

    /// The payload of `header`: a slice of `buffer` if it is all there, or
    /// (for a large one) the start of its assembly.
    private mutating func takePayload(_ header: FrameHeader, from buffer: inout ByteBuffer) -> Frame? {
        let length = Int(header.length)
        if let payload = buffer.readSlice(length: length) {
            state = .waitingForHeader
            return Frame(header: header, payload: payload)
        }
        guard length > Self.assemblyThreshold else { return nil }
        var payload = allocator.buffer(capacity: max(min(length, preallocationLimit), buffer.readableBytes))
        statistics.add(allocated: payload.capacity)
        payload.writeBuffer(&buffer)
        state = .assembling(header, payload: payload)
        return nil
    }
}
