import NIOCore
import ShoalWire

/// Closes an accepted connection whose first frame (its `hello`) has not
/// arrived within the timeout, counted from the accept; once a frame has
/// arrived it steps out of the pipeline.
///
/// It runs on the connection's event loop and judges only what the client
/// did. The task serving the connection may start late when Swift
/// concurrency's few threads are all busy: idle connections must still be
/// closed on time then, and a client whose hello came in time must not be
/// closed because the server was slow to read it.
final class HelloDeadline: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    // All state is touched on the channel's event loop only.
    typealias InboundIn = Frame
    typealias InboundOut = Frame

    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    /// Also on close: a closing channel's handlers are removed.
    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
        // Frames read in the same batch as this one stay in order: removal
        // takes effect after this call returns.
        if let timer {
            timer.cancel()
            self.timer = nil  // asked to leave once only
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
