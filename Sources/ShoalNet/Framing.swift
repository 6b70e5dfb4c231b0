import NIOCore
import ShoalWire

/// The pipeline every Shoal connection uses: frames in, frames out.
public enum Framing {
    /// Adds the frame decoder and encoder to `channel` and wraps it as an
    /// async channel of frames. Call on the channel's event loop.
    public static func configure(
        _ channel: any Channel,
        limit: @escaping @Sendable (MessageType) -> Int = { _ in FrameHeader.maximumPayloadLength },
        extraHandlers: [any ChannelHandler & Sendable] = []
    ) throws -> NIOAsyncChannel<Frame, Frame> {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(ByteToMessageHandler(FrameDecoder(limit: limit)))
        try sync.addHandler(MessageToByteHandler(FrameEncoder()))
        for handler in extraHandlers { try sync.addHandler(handler) }
        return try NIOAsyncChannel(
            wrappingChannelSynchronously: channel,
            configuration: .init(inboundType: Frame.self, outboundType: Frame.self)
        )
    }

    /// A peer's address as `host:port` for messages and logs.
    public static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown peer" }
        if let ip = address.ipAddress, let port = address.port {
            return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return "\(address)"
    }
}
