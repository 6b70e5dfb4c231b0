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
///
/// Given `answered`, the types of request the server answers once each, it
/// sends no probe while such a request has not been answered yet: the peer
/// is waiting on the server, and its silence says nothing (a tracker hashing
/// a burst of registrations took longer than the probe interval to answer,
/// and dropped the peers waiting for those answers whenever they were slow
/// to answer the probe). Quiet time then counts from the reply. It waits so
/// for at most ``longestWait``, in case a request goes unanswered.
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
    private let answered: (@Sendable (MessageType) -> Bool)?
    /// Requests read and not answered yet (counted when `answered` is given).
    private var owed = 0
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
    ///   - answered: which inbound frame types the server answers with exactly one frame (nil: no such promise).
    public init(probeAfter: TimeAmount, timeout: TimeAmount, answered: (@Sendable (MessageType) -> Bool)? = nil,
                onDrop: @escaping @Sendable (SocketAddress?) -> Void = { _ in }) {
        self.probeAfter = probeAfter
        self.timeout = timeout
        self.answered = answered
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
            lastRead = eventLoop.now
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
        if let answered, answered(unwrapInboundIn(data).type) { owed += 1 }
        noteFrame(context)
        context.fireChannelRead(data)
    }

    /// A frame arrived that a handler nearer the socket took for itself
    /// (answered at once, or kept to answer later): a sign of life like any
    /// other. Call on the channel's event loop.
    public func frameArrived() {
        guard let context else { return }
        noteFrame(context)
    }

    private func noteFrame(_ context: ChannelHandlerContext) {
        guard active else { return }
        lastRead = context.eventLoop.now
        if probing {
            // The answer (or any frame) came: quiet time counts from now.
            probing = false
            arm(context, after: probeAfter)
        }
    }

    /// The longest the server's own work holds back the probes.
    public static let longestWait = TimeAmount.minutes(10)

    /// A reply going out settles one request; quiet time counts from it.
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // `owed` only counts when `answered` is given.
        if owed > 0, unwrapOutboundIn(data).type != .checkActive {
            owed -= 1
            lastRead = context.eventLoop.now
        }
        context.write(data, promise: promise)
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
        if probing {
            // The probe went unanswered.
            droppedFlag.store(true, ordering: .relaxed)
            onDrop(context.channel.remoteAddress)
            context.close(promise: nil)
            return
        }
        let now = context.eventLoop.now
        if owed > 0, now < lastRead + Self.longestWait {
            // The peer is waiting on us.
            arm(context, after: probeAfter)
            return
        }
        let quietUntil = lastRead + probeAfter
        if quietUntil > now {
            // Something arrived since the timer was set: wait out the rest.
            arm(context, after: quietUntil - now)
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
