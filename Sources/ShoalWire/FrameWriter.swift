import NIOCore

/// Writes ``OutgoingFrame``s onto a channel without copying large payloads:
/// a small frame goes out as one buffer; a large one as its header and its
/// payload side by side (one `writev`); a file-backed one as its header and
/// start, then its file region (`sendfile`).
public final class FrameWriter: ChannelOutboundHandler, Sendable {
    public typealias OutboundIn = OutgoingFrame
    public typealias OutboundOut = IOData

    /// Payloads up to this size are copied behind their header: one small
    /// buffer is cheaper than a vector write of two.
    public static let copyLimit = 16 * 1024

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case let .frame(frame) where frame.payload.readableBytes <= Self.copyLimit:
            var buffer = context.channel.allocator.buffer(capacity: FrameHeader.size + frame.payload.readableBytes)
            frame.write(to: &buffer)
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case let .frame(frame):
            var header = context.channel.allocator.buffer(capacity: FrameHeader.size)
            frame.header.write(to: &header)
            // If the header fails, so does the payload behind it: one promise covers both.
            context.write(wrapOutboundOut(.byteBuffer(header)), promise: nil)
            context.write(wrapOutboundOut(.byteBuffer(frame.payload)), promise: promise)
        case let .fileBacked(frame):
            var head = context.channel.allocator.buffer(capacity: FrameHeader.size + frame.start.readableBytes)
            frame.header.write(to: &head)
            head.writeImmutableBuffer(frame.start)
            context.write(wrapOutboundOut(.byteBuffer(head)), promise: nil)
            context.write(wrapOutboundOut(.fileRegion(frame.rest)), promise: promise)
        }
    }
}
