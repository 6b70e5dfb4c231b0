import NIOCore

/// What a connection sends: a frame held in memory, or one whose payload
/// ends in a stretch of a file.
public enum OutgoingFrame: Sendable {
    case frame(Frame)
    case fileBacked(FileBackedFrame)

    /// Its message type.
    public var type: MessageType {
        switch self {
        case let .frame(frame): frame.type
        case let .fileBacked(frame): frame.header.type
        }
    }

    /// Bytes on the wire, header included.
    public var wireBytes: Int {
        switch self {
        case let .frame(frame): FrameHeader.size + frame.payload.readableBytes
        case let .fileBacked(frame): FrameHeader.size + Int(frame.header.length)
        }
    }
}

/// A frame whose payload is `start` (from memory) followed by `rest` (a
/// region of a file): a seeder's chunk, header from memory, bytes from the
/// file or its compressed cache. The kernel sends the file's part straight
/// from the page cache (`sendfile`), without copying it through the process.
public struct FileBackedFrame: Sendable {
    public let header: FrameHeader
    public let start: ByteBuffer
    public let rest: FileRegion

    public init(type: MessageType, flags: FrameFlags = [], requestID: UInt32, start: ByteBuffer, rest: FileRegion) {
        let length = start.readableBytes + rest.readableBytes
        precondition(length <= FrameHeader.maximumPayloadLength, "payload over the protocol limit")
        self.header = FrameHeader(type: type, flags: flags, length: UInt32(length), requestID: requestID)
        self.start = start
        self.rest = rest
    }
}
