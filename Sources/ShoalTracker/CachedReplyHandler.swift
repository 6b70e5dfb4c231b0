import NIOCore
import ShoalCore
import ShoalWire
import Synchronization

/// Answers a logged-in connection's `list` and `details` on its event loop,
/// when the reply is in ``ServedReplies``, instead of handing the request to
/// the connection's task and the ``Tracker`` actor: no thread hop, no task
/// wake-up, no actor queue. Everything else (and every miss) goes on to the
/// task as before, which answers it and fills the cache.
///
/// Replies keep the order of requests: a request is answered here only when
/// every earlier request of the connection has been answered (the task's
/// replies pass through this handler on their way out), so an `announce`
/// followed by a `list` is answered in that order, and the `list` sees the
/// announce. A `list` or `details` that comes while an earlier request is
/// with the task waits here (with every request behind it), and is answered
/// from the cache once that reply has gone out, rather than queueing on the
/// task and the actor too: when a swarm starts, every peer's first requests
/// come right behind its announce.
///
/// The task tells it which session the connection carries (``bind(token:user:)``
/// after a login, ``unbind()`` after a logout, or when the tracker ends the
/// session and closes the connection); a request naming another token goes
/// to the task, which refuses it.
final class CachedReplyHandler: ChannelDuplexHandler, Sendable {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = OutgoingFrame
    typealias OutboundOut = OutgoingFrame

    private struct Session {
        var token: String
        var user: String
    }

    private struct State {
        var session: Session?
        /// Requests handed to the task and not answered yet, by request id.
        var pending: [UInt32: Int] = [:]
        var pendingCount = 0
        /// Too many requests pending to keep count (a client that pipelines
        /// without end): nothing is answered here any more on this connection.
        var gaveUp = false
        /// A reply written here and not flushed yet.
        var unflushed = false
        /// Requests waiting for the pending ones to be answered, in order.
        var waiting = CircularBuffer<Frame>()
    }

    /// What to do with a request as it comes in.
    private enum Route {
        case answerHere
        case wait
        case handOn
    }

    /// Past this many pending requests, the connection is left to its task.
    static let maximumPending = 256
    /// Past this many waiting requests, they all go to the task.
    static let maximumWaiting = 64

    private let state = Mutex(State())
    private let served: ServedReplies
    private let metrics: TrackerMetrics
    private let draining: @Sendable () -> Bool

    init(served: ServedReplies, metrics: TrackerMetrics, draining: @escaping @Sendable () -> Bool) {
        self.served = served
        self.metrics = metrics
        self.draining = draining
    }

    /// The connection carries the session `token` of `user` from now on.
    func bind(token: String, user: String) {
        state.withLock { $0.session = Session(token: token, user: user) }
    }

    /// The connection carries no session any more.
    func unbind() {
        state.withLock { $0.session = nil }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let cacheable = Self.isCacheable(frame.type)
        guard cacheable || Self.isRequest(frame.type) else {
            context.fireChannelRead(data)
            return
        }
        let route = state.withLock { state -> Route in
            if state.gaveUp { return .handOn }
            if !state.waiting.isEmpty || (cacheable && state.pendingCount > 0 && state.session != nil) {
                guard state.waiting.count < Self.maximumWaiting else { return .handOn }
                state.waiting.append(frame)
                return .wait
            }
            return cacheable ? .answerHere : .handOn
        }
        switch route {
        case .wait:
            return
        case .answerHere:
            if let reply = answer(frame, writable: context.channel.isWritable) {
                send(reply, context: context)
                return
            }
            handOn(frame, context: context)
        case .handOn:
            // Too many waiting: they go to the task first, in order, then this one.
            let waiting = state.withLock { state in
                defer { state.waiting.removeAll() }
                return Array(state.waiting)
            }
            for earlier in waiting { handOn(earlier, context: context) }
            handOn(frame, context: context)
        }
    }

    /// The requests answered here when their reply is cached.
    private static func isCacheable(_ type: MessageType) -> Bool { type == .list || type == .details }

    private static func isRequest(_ type: MessageType) -> Bool {
        switch type {
        case .register, .login, .logout, .announce, .manifest, .report, .status, .list, .details: true
        default: false
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        let flush = state.withLock { state in
            defer { state.unflushed = false }
            return state.unflushed
        }
        if flush { context.flush() }
        context.fireChannelReadComplete()
    }

    /// The task's replies pass here: each one answers a pending request.
    /// When the last one has, the requests waiting behind them go on.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var release = false
        if case let .frame(frame) = unwrapOutboundIn(data) {
            release = state.withLock { state in
                guard let count = state.pending[frame.requestID] else { return false }
                if count == 1 { state.pending.removeValue(forKey: frame.requestID) } else { state.pending[frame.requestID] = count - 1 }
                state.pendingCount -= 1
                return state.pendingCount == 0 && !state.waiting.isEmpty
            }
        }
        context.write(data, promise: promise)
        // After this write and the flush that follows it, not from inside it.
        if release {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.eventLoop.execute { self.releaseWaiting(context: bound.value) }
        }
    }

    /// Answers the waiting requests in order from the cache, until one must
    /// go to the task: that one and the rest wait for its reply.
    private func releaseWaiting(context: ChannelHandlerContext) {
        var wrote = false
        var handed = false
        while let frame = state.withLock({ state -> Frame? in
            state.pendingCount == 0 && !state.gaveUp ? state.waiting.popFirst() : nil
        }) {
            if Self.isCacheable(frame.type), let reply = answer(frame, writable: context.channel.isWritable) {
                send(reply, context: context)
                wrote = true
            } else {
                handOn(frame, context: context)
                handed = true
            }
        }
        if wrote, state.withLock({ state in defer { state.unflushed = false }; return state.unflushed }) { context.flush() }
        if handed { context.fireChannelReadComplete() }
    }

    /// Writes a reply from the cache, flushed with the others at the end of
    /// the read, unless it filled the write buffer: then at once, so the
    /// next request sees whether the client really is behind (unflushed
    /// replies count against the buffer's high mark, which a page of the
    /// list with object rows, about 19 KB, is past).
    private func send(_ reply: Frame, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.frame(reply)), promise: nil)
        if context.channel.isWritable {
            state.withLock { $0.unflushed = true }
        } else {
            state.withLock { $0.unflushed = false }
            context.flush()
        }
    }

    /// A request goes on to the task: it is pending until its reply passes here.
    private func handOn(_ frame: Frame, context: ChannelHandlerContext) {
        state.withLock { state in
            guard !state.gaveUp else { return }
            guard state.pendingCount < Self.maximumPending else {
                state.gaveUp = true
                return
            }
            state.pending[frame.requestID, default: 0] += 1
            state.pendingCount += 1
        }
        context.fireChannelRead(wrapInboundOut(frame))
    }

    /// The reply to `frame` from the cache, or nil when the task must answer it.
    private func answer(_ frame: Frame, writable: Bool) -> Frame? {
        guard writable else { return nil }
        let session = state.withLock { state in state.pendingCount == 0 && !state.gaveUp ? state.session : nil }
        guard let session, !draining() else { return nil }
        let started = ContinuousClock.now
        let reply: Frame
        switch try? Message(frame: frame) {
        case let .list(request):
            guard request.token == session.token, let page = try? served.listPage(after: request.after, compact: request.compact == true) else { return nil }
            reply = Frame(type: .fileList, requestID: frame.requestID, payload: page)
        case let .details(request):
            guard request.token == session.token, request.knownMaps == nil else { return nil }
            let name = request.name.flatMap { try? FileName($0) }
            // A name that is no file name goes to the task, which refuses it.
            guard request.name == nil || name != nil else { return nil }
            let key = DetailsCache.Key(name: name, contentID: request.contentID, withManifest: request.withoutManifest != true,
                                       holdersAfter: request.holdersAfter)
            guard let payload = try? served.details(key, asker: session.user, extending: request.downloadID) else { return nil }
            reply = Frame(type: .fileDetails, requestID: frame.requestID, payload: payload)
        default:
            return nil
        }
        metrics.request(frame.type, refused: false, duration: .now - started)
        return reply
    }
}
