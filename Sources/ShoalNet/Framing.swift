import NIOCore
import ShoalWire

/// The pipeline every Shoal connection uses: frames in, frames out.
public enum Framing {
    /// Adds the frame decoder and writer to `channel` and wraps it as an
    /// async channel: frames in, ``OutgoingFrame``s out. Call on the
    /// channel's event loop.
    public static func configure(
        _ channel: any Channel,
        limit: @escaping @Sendable (MessageType) -> Int = { _ in FrameHeader.maximumPayloadLength },
        preallocationLimit: Int = FrameDecoder.assemblyThreshold,
        accepts: (@Sendable (FrameHeader) -> Bool)? = nil,
        statistics: FrameStatistics = FrameStatistics(),
        extraHandlers: [any ChannelHandler & Sendable] = []
    ) throws -> NIOAsyncChannel<Frame, OutgoingFrame> {
        let sync = channel.pipeline.syncOperations
        let decoder = FrameDecoder(limit: limit, preallocationLimit: preallocationLimit, accepts: accepts, statistics: statistics)
        try sync.addHandler(ByteToMessageHandler(decoder))
        try sync.addHandler(FrameWriter())
        for handler in extraHandlers { try sync.addHandler(handler) }
        return try NIOAsyncChannel(
            wrappingChannelSynchronously: channel,
            configuration: .init(inboundType: Frame.self, outboundType: OutgoingFrame.self)
        )
    }

    /// `host:port`, with an IPv6 host in brackets.
    public static func describe(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
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

extension NIOAsyncChannelOutboundWriter where OutboundOut == OutgoingFrame {
    /// Sends a frame held in memory.
    public func write(_ frame: Frame) async throws {
        try await write(.frame(frame))
    }
}
