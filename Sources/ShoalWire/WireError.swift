import ShoalCore

/// Everything that can be wrong with bytes that arrived from the network.
/// Each case carries the offending values; each message says what happened and
/// what the user can do. None of them is fatal to the process: the connection
/// that produced it is closed, everyone else goes on.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The frame header names a protocol version this build does not speak.
    case unsupportedVersion(received: UInt8, supported: UInt8)
    /// The frame header names a message type this build does not know.
    case unknownMessageType(UInt8)
    /// The frame header sets flag bits that are reserved or not allowed for its type.
    case unknownFlags(UInt8, type: UInt8)
    /// The frame header's reserved byte is not zero.
    case nonzeroReserved(UInt8)
    /// A message to send does not fit in one frame (a reply listing too much).
    case messageTooLarge(type: String, length: Int, limit: Int)
    /// The frame header announces a payload longer than the limit; nothing was allocated.
    case frameTooLarge(length: UInt32, limit: Int)
    /// The connection ended in the middle of a frame.
    case truncatedFrame(expected: Int, received: Int)
    /// A payload could not be decoded as the message its type names.
    case malformedPayload(type: String, reason: String)
    /// A zlib stream was corrupt.
    case corruptCompressedData(reason: String)
    /// A compressed chunk inflated to more bytes than it declared.
    case inflatedPastDeclaredSize(declared: Int)
    /// A compressed chunk inflated to fewer bytes than it declared.
    case inflatedShort(declared: Int, actual: Int)
    /// A chunk's declared length is not the length the manifest gives it.
    case chunkLengthMismatch(index: Int, expected: Int, declared: Int)
    /// A chunk's bytes do not hash to the digest in the manifest.
    case chunkHashMismatch(index: Int, expected: ChunkDigest, actual: ChunkDigest)
    /// A chunk arrived for another file or another index than the one asked for.
    case unexpectedChunk(expected: String, received: String)
    /// The peer opened with something other than a handshake, or answered it wrongly.
    case handshakeFailed(reason: String)
    /// The remote side answered with an error message.
    case remote(code: String, message: String)

    /// The `error` reply a server sends before closing a connection that sent this.
    public var reply: ErrorReply {
        switch self {
        case .unsupportedVersion: ErrorReply(code: .unsupportedVersion, message: description)
        case .frameTooLarge, .messageTooLarge: ErrorReply(code: .tooLarge, message: description)
        case let .remote(code, message): ErrorReply(code: ErrorCode(rawValue: code), message: message)
        default: ErrorReply(code: .badRequest, message: description)
        }
    }

    public var description: String {
        switch self {
        case let .unsupportedVersion(received, supported):
            return "the remote side speaks Shoal protocol version \(received), this build speaks version \(supported); upgrade the older side"
        case let .unknownMessageType(type):
            return "received a frame of unknown message type 0x\(String(type, radix: 16)); the remote side is not a Shoal peer or runs an incompatible version"
        case let .unknownFlags(flags, type):
            return "received a frame of type 0x\(String(type, radix: 16)) with flags 0b\(String(flags, radix: 2)) that are not defined for it; the sender is broken or incompatible"
        case let .nonzeroReserved(value):
            return "received a frame whose reserved header byte is \(value), not 0; the sender is broken or incompatible"
        case let .messageTooLarge(type, length, limit):
            return "a \(type) message of \(length) bytes does not fit in one frame (limit \(limit)); ask for less at a time"
        case let .frameTooLarge(length, limit):
            return "the remote side announced a \(length)-byte frame, over the \(limit)-byte limit; the connection was closed without reading it"
        case let .truncatedFrame(expected, received):
            return "the connection closed in the middle of a frame (\(received) of \(expected) bytes arrived); the transfer will be retried"
        case let .malformedPayload(type, reason):
            return "a \(type) message could not be decoded: \(reason)"
        case let .corruptCompressedData(reason):
            return "a compressed chunk is corrupt (\(reason)); it will be fetched again elsewhere"
        case let .inflatedPastDeclaredSize(declared):
            return "a compressed chunk inflates past its declared \(declared) bytes; it was discarded and will be fetched again elsewhere"
        case let .inflatedShort(declared, actual):
            return "a compressed chunk inflated to \(actual) bytes instead of its declared \(declared); it will be fetched again elsewhere"
        case let .chunkLengthMismatch(index, expected, declared):
            return "chunk \(index) was declared as \(declared) bytes but the manifest says \(expected); the sender is wrong and will not be used for this file"
        case let .chunkHashMismatch(index, expected, actual):
            return "chunk \(index) hashes to \(actual.hex.prefix(12)) instead of \(expected.hex.prefix(12)); it will be fetched again from another peer"
        case let .unexpectedChunk(expected, received):
            return "asked for \(expected) but received \(received); the sender is confused and will not be used for this file"
        case let .handshakeFailed(reason):
            return "the connection handshake failed: \(reason)"
        case let .remote(code, message):
            return "the remote side refused the request (\(code)): \(message)"
        }
    }
}
