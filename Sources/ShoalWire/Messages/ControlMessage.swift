import Foundation
import NIOCore

/// A message whose payload is JSON (everything but chunk traffic): readable in
/// a packet capture, extensible by adding optional fields.
public protocol ControlMessage: Codable, Sendable, Equatable {
    /// The frame type that carries it.
    static var messageType: MessageType { get }
}

extension ControlMessage {
    /// This message in a frame; throws ``WireError/messageTooLarge(type:length:limit:)``
    /// if its JSON does not fit in one frame.
    public func frame(requestID: UInt32, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(WireError) -> Frame {
        let data = WireJSON.encode(self)
        guard data.count <= FrameHeader.maximumPayloadLength else {
            throw .messageTooLarge(type: Self.messageType.description, length: data.count, limit: FrameHeader.maximumPayloadLength)
        }
        var buffer = allocator.buffer(capacity: data.count)
        buffer.writeBytes(data)
        return Frame(type: Self.messageType, requestID: requestID, payload: buffer)
    }

    /// Decodes a frame's payload as this message.
    public init(frame: Frame) throws(WireError) {
        guard frame.type == Self.messageType else {
            throw .malformedPayload(type: Self.messageType.description, reason: "the frame is a \(frame.type), not a \(Self.messageType)")
        }
        do {
            self = try JSONDecoder().decode(Self.self, from: Data(frame.payload.readableBytesView))
        } catch let error as DecodingError {
            throw .malformedPayload(type: Self.messageType.description, reason: Self.explain(error))
        } catch {
            throw .malformedPayload(type: Self.messageType.description, reason: "\(error)")
        }
    }

    private static func explain(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "the payload" : "field '\(keys.joined(separator: "."))'"
        }
        switch error {
        case let .keyNotFound(key, context):
            return "missing field '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case let .typeMismatch(_, context), let .valueNotFound(_, context):
            return "\(path(context)) has the wrong type"
        case let .dataCorrupted(context):
            return "\(path(context)) is invalid: \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
