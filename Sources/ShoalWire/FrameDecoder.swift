import NIOCore

/// Cuts a byte stream into ``Frame``s, whatever the read boundaries: a frame
/// split across many reads, or many frames in one read.
///
/// The header is validated as soon as its 12 bytes are in (see
/// ``FrameHeader``), so an oversized length, an unknown type or a wrong version
/// is refused before any payload is buffered. Decompression and payload
/// decoding are later, separate steps.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    private enum State {
        case waitingForHeader
        case waitingForPayload(FrameHeader)
    }

    private var state = State.waitingForHeader
    private let limit: @Sendable (MessageType) -> Int

    /// A decoder refusing payloads over `maximumPayloadLength` (at most the protocol's limit).
    public init(maximumPayloadLength: Int = FrameHeader.maximumPayloadLength) {
        let limit = min(maximumPayloadLength, FrameHeader.maximumPayloadLength)
        self.limit = { _ in limit }
    }

    /// A decoder whose limit depends on the message type (and may change over
    /// the connection's life, e.g. large announces only once logged in). The
    /// protocol's limit always applies on top.
    public init(limit: @escaping @Sendable (MessageType) -> Int) {
        self.limit = { min(limit($0), FrameHeader.maximumPayloadLength) }
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
        default:
            return nil
        }
    }

    /// Typed-throwing core shared by both entry points.
    public mutating func decodeFrame(_ buffer: inout ByteBuffer) throws(WireError) -> Frame? {
        if case .waitingForHeader = state {
            guard let header = try FrameHeader.read(from: &buffer, maximumPayloadLength: limit) else {
                return nil
            }
            state = .waitingForPayload(header)
        }
        guard case let .waitingForPayload(header) = state,
              let payload = buffer.readSlice(length: Int(header.length)) else { return nil }
        state = .waitingForHeader
        return Frame(header: header, payload: payload)
    }
}
