import NIOCore

/// One framed message: a ``FrameHeader`` and its payload.
public struct Frame: Hashable, Sendable {
    public var header: FrameHeader
    public var payload: ByteBuffer

    /// A frame of `type` around `payload`; the header's length is taken from it.
    public init(type: MessageType, flags: FrameFlags = [], requestID: UInt32, payload: ByteBuffer) {
        precondition(payload.readableBytes <= FrameHeader.maximumPayloadLength, "payload over the protocol limit")
        self.header = FrameHeader(type: type, flags: flags, length: UInt32(payload.readableBytes), requestID: requestID)
        self.payload = payload
    }

    init(header: FrameHeader, payload: ByteBuffer) {
        self.header = header
        self.payload = payload
    }

    public var type: MessageType { header.type }
    public var requestID: UInt32 { header.requestID }

    /// Appends header and payload.
    public func write(to buffer: inout ByteBuffer) {
        header.write(to: &buffer)
        var payload = payload
        buffer.writeBuffer(&payload)
    }

    /// The encoded bytes, in a fresh buffer.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: FrameHeader.size + payload.readableBytes)
        write(to: &buffer)
        return buffer
    }
}
