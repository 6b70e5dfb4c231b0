import NIOCore

/// The fixed 12-byte header in front of every payload on every connection.
///
/// ```
///   0        1        2        3        4                 8                12
///   +--------+--------+--------+--------+-----------------+-----------------+
///   |version |  type  | flags  |reserved| payload length  |   request id    |
///   |  u8    |  u8    |  u8    | u8 = 0 |  u32 big-endian |  u32 big-endian |
///   +--------+--------+--------+--------+-----------------+-----------------+
///   followed by `payload length` bytes of payload
/// ```
///
/// A reader validates the whole header (version, type, flags, reserved byte,
/// length against its limit) before it allocates or waits for any payload.
public struct FrameHeader: Hashable, Sendable {
    /// The protocol version this build speaks.
    public static let currentVersion: UInt8 = 1
    /// The encoded size of a header.
    public static let size = 12
    /// The protocol's largest payload: 16 MiB (a 1 TiB file's manifest fits,
    /// and so does a 4 MiB chunk with room to spare).
    public static let maximumPayloadLength = 16 * 1024 * 1024

    public var version: UInt8
    public var type: MessageType
    public var flags: FrameFlags
    public var length: UInt32
    /// Chosen by the sender of a request, echoed by the reply; 0 for none.
    public var requestID: UInt32

    public init(version: UInt8 = FrameHeader.currentVersion, type: MessageType, flags: FrameFlags = [], length: UInt32, requestID: UInt32) {
        self.version = version
        self.type = type
        self.flags = flags
        self.length = length
        self.requestID = requestID
    }

    /// Reads and validates a header; returns nil (consuming nothing) if fewer
    /// than ``size`` bytes are readable.
    public static func read(from buffer: inout ByteBuffer, maximumPayloadLength: Int) throws(WireError) -> FrameHeader? {
        try read(from: &buffer) { _ in maximumPayloadLength }
    }

    /// Like ``read(from:maximumPayloadLength:)`` with a limit per message type.
    public static func read(from buffer: inout ByteBuffer, maximumPayloadLength limit: (MessageType) -> Int) throws(WireError) -> FrameHeader? {
        guard buffer.readableBytes >= size else { return nil }
        let start = buffer.readerIndex
        let version = buffer.getInteger(at: start, as: UInt8.self)!
        guard version == currentVersion else {
            throw .unsupportedVersion(received: version, supported: currentVersion)
        }
        let rawType = buffer.getInteger(at: start + 1, as: UInt8.self)!
        guard let type = MessageType(rawValue: rawType) else { throw .unknownMessageType(rawType) }
        let flags = FrameFlags(rawValue: buffer.getInteger(at: start + 2, as: UInt8.self)!)
        let reserved = buffer.getInteger(at: start + 3, as: UInt8.self)!
        guard type.allowedFlags.isSuperset(of: flags) else { throw .unknownFlags(flags.rawValue, type: rawType) }
        guard reserved == 0 else { throw .nonzeroReserved(reserved) }
        let length = buffer.getInteger(at: start + 4, as: UInt32.self)!
        let maximum = limit(type)
        guard Int(length) <= maximum else {
            throw .frameTooLarge(length: length, limit: maximum)
        }
        let requestID = buffer.getInteger(at: start + 8, as: UInt32.self)!
        buffer.moveReaderIndex(forwardBy: size)
        return FrameHeader(version: version, type: type, flags: flags, length: length, requestID: requestID)
    }

    /// Appends the 12 header bytes.
    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(version)
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(length)
        buffer.writeInteger(requestID)
    }
}
