import NIOCore
import ShoalWire
import Synchronization

/// Probes a quiet connection with `checkActive` and closes it if nothing at
/// all arrives within the timeout after the probe (the original's CheckActive).
///
/// It starts idle: the server calls ``activate()`` once the handshake is
/// done, since nothing but the handshake may cross a connection before that
/// (a deadline of the server's own covers a client that never says hello).
///
/// Sits after the frame codec, so it writes ``OutgoingFrame``s. Any inbound frame
/// counts as a sign of life, the `active` answer included; the handler lets
/// every frame through unchanged.
public final class LivenessHandler: ChannelDuplexHandler, @unchecked Sendable {
    // All state is touched on the channel's event loop only.
    public typealias InboundIn = Frame
    public typealias InboundOut = Frame
    public typealias OutboundIn = OutgoingFrame
    public typealias OutboundOut = OutgoingFrame

    private let probeAfter: TimeAmount
    private let timeout: TimeAmount
    private let onDrop: @Sendable (SocketAddress?) -> Void
    private let droppedFlag = Atomic<Bool>(false)
    private var timer: Scheduled<Void>?
    /// When the last frame arrived. A read only notes the time: the timer,
    /// when it fires, sees whether the connection has really been quiet for
    /// `probeAfter` and if not waits the rest (rescheduling a timer on every
    /// frame cost a busy tracker 5 % of its CPU).
    private var lastRead = NIODeadline.now()
    private var probing = false
    private var active = false
    private var context: ChannelHandlerContext?
    private var nonce: UInt32 = 0
    /// Request ids for probes count down from the top, away from the ids a peer uses.
    private var nextRequestID: UInt32 = .max

    /// - Parameters:
    ///   - probeAfter: how long a connection may stay quiet before it is probed.
    ///   - timeout: how long the probe may go unanswered before the connection is closed.
    ///   - onDrop: called (on the event loop) when a connection is dropped for silence.
    public init(probeAfter: TimeAmount, timeout: TimeAmount, onDrop: @escaping @Sendable (SocketAddress?) -> Void = { _ in }) {
        self.probeAfter = probeAfter
        self.timeout = timeout
        self.onDrop = onDrop
    }

    /// Whether this handler closed the connection for silence.
    public var dropped: Bool { droppedFlag.load(ordering: .relaxed) }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Starts watching the connection (after the handshake). Safe from any
    /// thread: the work hops to `eventLoop`, the channel's.
    public func activate(on eventLoop: any EventLoop) {
        eventLoop.execute { [self] in
            guard !active, let context, context.channel.isActive else { return }
            active = true
            lastRead = .now()
            arm(context, after: probeAfter)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if active {
            lastRead = .now()
            if probing {
                // The answer (or any frame) came: quiet time counts from now.
                probing = false
                arm(context, after: probeAfter)
            }
        }
        context.fireChannelRead(data)
    }

    private func arm(_ context: ChannelHandlerContext, after delay: TimeAmount) {
        timer?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            handler.fire(context)
        }
    }

    private func fire(_ context: ChannelHandlerContext) {
        if !probing {
            let quietUntil = lastRead + probeAfter
            if quietUntil > .now() {
                // Something arrived since the timer was set: wait out the rest.
                arm(context, after: quietUntil - .now())
                return
            }
        }
        if probing {
            droppedFlag.store(true, ordering: .relaxed)
            onDrop(context.channel.remoteAddress)
            context.close(promise: nil)
            return
        }
        probing = true
        nonce &+= 1
        let id = nextRequestID
        nextRequestID &-= 1
        if let frame = try? CheckActive(nonce: nonce).frame(requestID: id) {
            context.writeAndFlush(wrapOutboundOut(.frame(frame)), promise: nil)
        }
        arm(context, after: timeout)
    }
}
