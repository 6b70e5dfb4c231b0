import NIOCore
import ShoalCore
import ShoalNet
import ShoalWire
import Synchronization

/// Answers a logged-in connection's quick requests on the event loops,
/// instead of handing them to the connection's task: `list` and `details`
/// from ``ServedReplies`` when the reply is cached, without the actor; and
/// on a miss, like `announce` and `manifest`, from the ``Tracker`` itself
/// (``Tracker/handleNow(_:parsed:connection:)``) on the loop it runs on:
/// at once when the connection is served by that loop, else with one hop
/// there and one back. No task wakes up, no Swift concurrency job runs.
/// Everything else (logins, reports, a store that keeps the registry, a
/// large announce) goes on to the task as before.
///
/// It sits first in the pipeline, nearest the socket: what it answers goes
/// through no other handler (it tells ``LivenessHandler`` itself).
///
/// Replies keep the order of requests: a request is answered here only when
/// every earlier request of the connection has been answered (the task's
/// replies pass through this handler on their way out), so an `announce`
/// followed by a `list` is answered in that order, and the `list` sees the
/// announce. A quick request that comes while an earlier one is with the
/// task or on its hop waits here (with every request behind it), and is
/// answered once that reply has gone out, rather than queueing on the task
/// and the actor too: when a swarm starts, every peer's first requests
/// come right behind its announce.
///
/// The task tells it which session the connection carries (``bind(token:user:connection:)``
/// after a login, ``unbind()`` after a logout, or when the tracker ends the
/// session and closes the connection); a request naming another token goes
/// to the task, which refuses it.
final class LoopReplyHandler: ChannelDuplexHandler, Sendable {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = OutgoingFrame
    typealias OutboundOut = OutgoingFrame

    private struct Session {
        var token: String
        var user: String
        /// The tracker's id of the connection (its sessions are bound to it).
        var connection: UInt64
    }

    private struct State {
        var session: Session?
        /// Requests handed to the task or on their hop to the actor, not answered yet, by request id.
        var pending: [UInt32: Int] = [:]
        var pendingCount = 0
        /// Too many requests pending to keep count (a client that pipelines
        /// without end): nothing is answered here any more on this connection.
        var gaveUp = false
        /// A reply written here and not flushed yet.
        var unflushed = false
        /// Requests waiting for the pending ones to be answered, in order.
        var waiting = CircularBuffer<Frame>()
        /// A request is on its hop to the actor's loop: every request waits behind it.
        var hopping = false
        /// A read held back while requests wait (``read(context:)``).
        var readHeld = false
        /// A frame went on down the pipeline since its last read-complete event.
        var forwarded = false
    }

    /// What to do with a request as it comes in.
    private enum Route {
        case answerHere
        case wait
        case handOn
    }

    /// What became of a request tried here.
    private enum Answer {
        /// The reply, written.
        case sent
        /// On its hop to the actor's loop: pending until the reply comes back.
        case hopped
        /// For the task.
        case notHere
    }

    /// Past this many pending requests, the connection is left to its task.
    static let maximumPending = 256
    /// Past this many waiting requests, they all go to the task.
    static let maximumWaiting = 64
    /// Larger announces are parsed by the connection's task, off the event
    /// loops (a manifest of a big file is megabytes of JSON), and applied
    /// through it.
    static let largestQuickAnnounce = 64 * 1024

    private let state = Mutex(State())
    private let tracker: Tracker
    private let served: ServedReplies
    private let metrics: TrackerMetrics
    /// Told of each request answered or kept here, which it does not see pass.
    private let liveness: LivenessHandler?
    /// The server's connections: a request on its hop counts as one being
    /// handled, so a drain waits for its reply.
    private let connections: ConnectionTable

    init(tracker: Tracker, liveness: LivenessHandler? = nil, connections: ConnectionTable) {
        self.tracker = tracker
        self.served = tracker.served
        self.metrics = tracker.metrics
        self.liveness = liveness
        self.connections = connections
    }

    /// The connection (`connection`, as the tracker numbers it) carries the session `token` of `user` from now on.
    func bind(token: String, user: String, connection: UInt64) {
        state.withLock { $0.session = Session(token: token, user: user, connection: connection) }
    }

    /// The connection carries no session any more.
    func unbind() {
        state.withLock { $0.session = nil }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let quick = isQuick(frame)
        guard quick || Self.isRequest(frame.type) else {
            state.withLock { $0.forwarded = true }
            context.fireChannelRead(data)
            return
        }
        let route = state.withLock { state -> Route in
            if state.gaveUp { return .handOn }
            if !state.waiting.isEmpty || state.hopping || (quick && state.pendingCount > 0 && state.session != nil) {
                guard state.waiting.count < Self.maximumWaiting else { return .handOn }
                state.waiting.append(frame)
                return .wait
            }
            return quick ? .answerHere : .handOn
        }
        switch route {
        case .wait:
            liveness?.frameArrived()
        case .answerHere:
            if answer(frame, context: context) != .notHere {
                liveness?.frameArrived()
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
            resumeReads(context: context)
        }
    }

    /// Whether `frame` is a request answered here when it can be. Not an
    /// announce over ``largestQuickAnnounce``, nor any announce when the
    /// store keeps the registry: those are not even decoded on the loop.
    private func isQuick(_ frame: Frame) -> Bool {
        switch frame.type {
        case .list, .details, .manifest: true
        case .announce: frame.payload.readableBytes <= Self.largestQuickAnnounce && !tracker.store.keepsRegistry
        default: false
        }
    }

    /// While requests wait here, nothing more is read: they are held in
    /// memory, and a client must not be able to pile up more than what one
    /// read brought (the task's requests are held back the same way, by its
    /// channel's buffer).
    func read(context: ChannelHandlerContext) {
        let hold = state.withLock { state -> Bool in
            guard !state.waiting.isEmpty else { return false }
            state.readHeld = true
            return true
        }
        if !hold { context.read() }
    }

    /// Reads again if a read was held and nothing waits any more.
    private func resumeReads(context: ChannelHandlerContext) {
        let resume = state.withLock { state -> Bool in
            guard state.readHeld, state.waiting.isEmpty else { return false }
            state.readHeld = false
            return true
        }
        if resume { context.read() }
    }

    private static func isRequest(_ type: MessageType) -> Bool {
        switch type {
        case .register, .login, .logout, .announce, .manifest, .report, .status, .list, .details: true
        default: false
        }
    }

    /// Flushes the replies written here, and tells the handlers behind it
    /// only when a frame went on to them: when every request of the read
    /// was answered here, they have nothing to complete (the task's channel
    /// hands what it buffered to the task on this event), and passing it
    /// through them was 4 % of the tracker's time under load.
    func channelReadComplete(context: ChannelHandlerContext) {
        let (flush, forwarded) = state.withLock { state in
            defer { state.unflushed = false; state.forwarded = false }
            return (state.unflushed, state.forwarded)
        }
        if flush { context.flush() }
        if forwarded { context.fireChannelReadComplete() }
    }

    /// The task's replies pass here: each one answers a pending request.
    /// When the last one has, the requests waiting behind them go on.
    /// Probes and answers to a client's probes answer no request.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var release = false
        if case let .frame(frame) = unwrapOutboundIn(data), frame.type != .checkActive, frame.type != .active {
            release = settle(frame.requestID)
        }
        context.write(data, promise: promise)
        // After this write and the flush that follows it, not from inside it.
        if release {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.eventLoop.execute { self.releaseWaiting(context: bound.value) }
        }
    }

    /// The request `requestID` is answered: true when it was the last one
    /// pending and requests wait behind it.
    private func settle(_ requestID: UInt32) -> Bool {
        state.withLock { state in
            guard let count = state.pending[requestID] else { return false }
            if count == 1 { state.pending.removeValue(forKey: requestID) } else { state.pending[requestID] = count - 1 }
            state.pendingCount -= 1
            return state.pendingCount == 0 && !state.waiting.isEmpty
        }
    }

    /// Answers the waiting requests in order, until one must go to the task
    /// or hop to the actor: that one and the rest wait for its reply.
    private func releaseWaiting(context: ChannelHandlerContext) {
        var wrote = false
        var handed = false
        while let frame = state.withLock({ state -> Frame? in
            state.pendingCount == 0 && !state.gaveUp ? state.waiting.popFirst() : nil
        }) {
            switch isQuick(frame) ? answer(frame, context: context) : .notHere {
            case .sent: wrote = true
            case .hopped: break
            case .notHere:
                handOn(frame, context: context)
                handed = true
            }
        }
        if wrote, state.withLock({ state in defer { state.unflushed = false }; return state.unflushed }) { context.flush() }
        if handed { context.fireChannelReadComplete() }
        resumeReads(context: context)
    }

    /// Writes a reply made here, flushed with the others at the end of
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
        pend(frame.requestID)
        state.withLock { $0.forwarded = true }
        context.fireChannelRead(wrapInboundOut(frame))
    }

    /// Counts `requestID` as pending (unless the connection is left to its task).
    private func pend(_ requestID: UInt32) {
        state.withLock { state in
            guard !state.gaveUp else { return }
            guard state.pendingCount < Self.maximumPending else {
                state.gaveUp = true
                return
            }
            state.pending[requestID, default: 0] += 1
            state.pendingCount += 1
        }
    }

    /// Answers `frame` here if it can: from the cache, or from the actor.
    private func answer(_ frame: Frame, context: ChannelHandlerContext) -> Answer {
        guard context.channel.isWritable else { return .notHere }
        let session = state.withLock { state in state.pendingCount == 0 && !state.gaveUp ? state.session : nil }
        guard let session, !connections.isDraining else { return .notHere }
        // A request that does not decode goes to the task, which says why.
        guard let message = try? Message(frame: frame) else { return .notHere }
        if let reply = cached(message, frame: frame, session: session) {
            send(reply, context: context)
            return .sent
        }
        return fromTracker(message, frame: frame, session: session, context: context)
    }

    /// The reply to `message` from the cache, or nil when the tracker must make it.
    private func cached(_ message: Message, frame: Frame, session: Session) -> Frame? {
        let started = ContinuousClock.now
        let reply: Frame
        switch message {
        case let .list(request):
            guard request.token == session.token, let page = try? served.listPage(after: request.after, compact: request.compact == true) else { return nil }
            reply = Frame(type: .fileList, requestID: frame.requestID, payload: page)
        case let .details(request):
            guard request.token == session.token, request.knownMaps == nil else { return nil }
            let name = request.name.flatMap { try? FileName($0) }
            // A name that is no file name goes to the tracker, which refuses it.
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

    /// Has the tracker answer `message` on its loop: here and now when this
    /// connection is served by that loop, else with a hop there and back.
    private func fromTracker(_ message: Message, frame: Frame, session: Session, context: ChannelHandlerContext) -> Answer {
        // A wrong token goes to the task, which refuses it.
        guard Self.token(of: message) == session.token else { return .notHere }
        let tracker = self.tracker
        // Parsed here, on this connection's loop, not on the actor's.
        let parsed = tracker.parse(message)
        let connection = session.connection
        if tracker.loop.inEventLoop {
            // Inside the actor from here is safe: on its loop, no job of the
            // actor is running while a channel event is handled, and no job
            // of it makes a channel read (it only closes connections, whose
            // sessions it unbinds first: see ``ConnectionTable/close(_:)``),
            // so this never runs nested inside one.
            guard let outcome = tracker.assumeIsolated({ $0.handleNow(message, parsed: parsed, connection: connection) }) else { return .notHere }
            if let reply = Self.frame(outcome, requestID: frame.requestID) {
                send(reply, context: context)
            } else {
                context.close(promise: nil)
            }
            return .sent
        }
        // Counted as being handled (a drain waits for it) unless the server drains already.
        guard connections.begin(connection) else { return .notHere }
        pend(frame.requestID)
        state.withLock { $0.hopping = true }
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        tracker.loop.execute {
            let outcome = tracker.assumeIsolated { $0.handleNow(message, parsed: parsed, connection: connection) }
            loop.execute {
                let (handler, context) = bound.value
                handler.hopped(frame, outcome: outcome, connection: connection, context: context)
            }
        }
        return .hopped
    }

    /// Back from the actor's loop with the outcome of `frame` (nil: it is for the task after all).
    private func hopped(_ frame: Frame, outcome: Tracker.Outcome?, connection: UInt64, context: ChannelHandlerContext) {
        if let outcome {
            if let reply = Self.frame(outcome, requestID: frame.requestID) {
                // Not through `write` (this handler's own): written from here, it goes straight on.
                context.writeAndFlush(wrapOutboundOut(.frame(reply)), promise: nil)
            } else {
                context.close(promise: nil)
            }
        } else {
            handOn(frame, context: context)
            context.fireChannelReadComplete()
        }
        state.withLock { $0.hopping = false }
        if settle(frame.requestID) { releaseWaiting(context: context) }
        connections.end(connection)
    }

    /// The frame carrying `outcome` (quick requests change no session); nil
    /// if it cannot be encoded (the connection is then closed, as the task
    /// does when it cannot send a reply).
    private static func frame(_ outcome: Tracker.Outcome, requestID: UInt32) -> Frame? {
        try? TrackerServer.replyFrame(outcome.reply, requestID: requestID)
    }

    /// The session token a quick request carries.
    private static func token(of message: Message) -> String? {
        switch message {
        case let .announce(request): request.token
        case let .list(request): request.token
        case let .details(request): request.token
        case let .manifest(request): request.token
        default: nil
        }
    }
}
