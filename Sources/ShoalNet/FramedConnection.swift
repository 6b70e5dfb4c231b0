import NIOCore
import NIOPosix
import ShoalWire
import Synchronization

/// The initiating side of a Shoal connection: connects, performs the
/// handshake, then sends requests and matches replies by request id (several
/// may be in flight at once). It answers the other side's `checkActive` by
/// itself, so a session to the tracker stays alive while its owner is busy.
///
/// Owns one TCP connection; ``close()`` ends it, and every request still
/// waiting then fails with ``NetError/connectionClosed(peer:)``.
///
/// Only replies still awaited reach it: the frame decoder skips any other
/// frame unread as its bytes stream by (``receiveStatistics`` counts them), so
/// an unsolicited chunk costs no memory however large it claims to be.
public final class FramedConnection: Sendable {
    /// `host:port` of the other side.
    public let remote: String
    /// The protocol version agreed in the handshake.
    public var version: Int { state.withLock { $0.version } }
    /// Seconds from sending the hello to its answer: the connection's first
    /// round trip, which a downloader takes as the holder's response time
    /// instead of spending another round trip on a `checkActive`.
    /// 0 until the answer has come (see `pipelined` in ``connect(host:port:role:group:timeout:maximumPayloadLength:preallocationLimit:answersProbes:security:statistics:pipelined:)``).
    public var handshakeRoundTrip: Double { state.withLock { $0.handshakeRoundTrip } }
    /// Seconds the TCP connection took to set up (SYN to SYN-ACK, one round
    /// trip; for a pipelined connection on Linux, the kernel's measure of
    /// it, which leaves out a lost SYN's retransmission timeout): the
    /// response time known before any frame was answered.
    public var connectRoundTrip: Double { state.withLock { $0.connectRoundTrip } }
    private let channel: any Channel
    private let outbound: NIOAsyncChannelOutboundWriter<OutgoingFrame>
    private let state = Mutex(State())

    /// Who gets a request's reply: a task awaiting it (``requestFrame(timeout:cancel:_:)``),
    /// or a handler called with it (``send(timeout:_:reply:)``).
    private enum Waiter {
        case task(CheckedContinuation<Frame, any Error>)
        case handler(@Sendable (Result<Frame, any Error>) -> Void)

        func resume(_ result: Result<Frame, any Error>) {
            switch self {
            case let .task(continuation): continuation.resume(with: result)
            case let .handler(handler): handler(result)
            }
        }
    }

    private struct Pending {
        var waiter: Waiter
        /// When it times out, and how the timeout is told.
        var deadline: NIODeadline
        var operation: String
        var seconds: Double
    }

    private struct State: ~Copyable {
        var nextRequestID: UInt32 = 1
        var waiting: [UInt32: Pending] = [:]
        /// The one timer that fails requests past their deadline (see
        /// ``FramedConnection/sweep(generation:)``): when it fires, and which
        /// scheduling it is (an earlier deadline supersedes it).
        var sweepAt: NIODeadline?
        var sweepGeneration = 0
        var closedError: NetError?
        var version = 0
        var handshakeRoundTrip = 0.0
        var connectRoundTrip = 0.0
        /// Frames made since the event loop last took them (see
        /// ``FramedConnection/enqueue(_:written:)``); not empty exactly while a
        /// hand-over to the event loop is scheduled.
        var outbox: [Outgoing] = []
    }

    /// A frame on its way to the event loop, and who to tell once it is
    /// written (or could not be).
    private struct Outgoing {
        var frame: Frame
        var written: (@Sendable (Result<Void, any Error>) -> Void)?
    }

    private let answersProbes: Atomic<Bool>
    /// What the frame decoder allocated for payloads and what it skipped unread.
    public let receiveStatistics: FrameStatistics

    /// The SHA-256 fingerprint of the certificate the other side proved it
    /// holds, when the connection is TLS.
    public let serverFingerprint: CertificateFingerprint?

    private init(channel: any Channel, outbound: NIOAsyncChannelOutboundWriter<OutgoingFrame>, remote: String, answersProbes: Bool,
                 serverFingerprint: CertificateFingerprint?, statistics: FrameStatistics) {
        self.channel = channel
        self.outbound = outbound
        self.remote = remote
        self.answersProbes = Atomic(answersProbes)
        self.serverFingerprint = serverFingerprint
        self.receiveStatistics = statistics
    }

    /// Whether the frame `header` starts is one this side awaits: the reply to
    /// a request still waiting, a liveness probe, or an error about no request
    /// in particular. The decoder skips anything else without buffering it.
    fileprivate func awaits(_ header: FrameHeader) -> Bool {
        if header.type == .checkActive || (header.type == .error && header.requestID == 0) { return true }
        return state.withLock { $0.waiting[header.requestID] != nil }
    }

    /// Stops answering `checkActive` from now on: the connection plays dead
    /// (for fault-injection tests of the other side's liveness checks).
    public func stopAnsweringProbes() {
        answersProbes.store(false, ordering: .relaxed)
    }

    /// Connects to `host:port` and performs the handshake.
    ///
    /// - Parameters:
    ///   - role: what this side says it is (`"peer"` or `"tool"`).
    ///   - maximumPayloadLength: the largest frame accepted from the other side.
    ///   - preallocationLimit: how large a payload may be allocated whole as
    ///     soon as its header arrives (replies this side asked for, such as
    ///     chunks); larger ones grow as their bytes come.
    ///   - answersProbes: whether to answer `checkActive` (tests turn it off to play a dead peer).
    ///   - security: in clear, or TLS with the server's fingerprint checked
    ///     before any frame is sent.
    ///   - statistics: where the frame decoder counts what it allocates and skips
    ///     (shared by several connections to sum them).
    ///   - pipelined: return as soon as the hello is handed to the socket,
    ///     without waiting for its answer, so that requests follow it in the
    ///     same round trip (the other side reads them after the hello, in
    ///     order). The answer is awaited in the background; if the handshake
    ///     fails, the connection closes and every request fails with
    ///     ``NetError/handshakeFailed(peer:reason:)``.
    public static func connect(
        host: String, port: Int, role: String,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: TimeAmount = .seconds(10),
        maximumPayloadLength: Int = FrameHeader.maximumPayloadLength,
        preallocationLimit: Int = FrameDecoder.assemblyThreshold,
        answersProbes: Bool = true,
        security: ClientSecurity = .plain,
        statistics: FrameStatistics = FrameStatistics(),
        pipelined: Bool = false
    ) async throws -> FramedConnection {
        let asyncChannel: NIOAsyncChannel<Frame, OutgoingFrame>
        let started = ContinuousClock.now
        let tlsHandshake: EventLoopFuture<CertificateFingerprint>?
        let target = Framing.describe(host: host, port: port)
        let awaited = AwaitedReplies()
        do {
            (asyncChannel, tlsHandshake) = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        var handshake: EventLoopFuture<CertificateFingerprint>?
                        if case let .tls(pin) = security {
                            handshake = try pin.configure(channel, remote: target, timeout: timeout).promise.futureResult
                        }
                        return (try Framing.configure(channel, limit: { _ in maximumPayloadLength }, preallocationLimit: preallocationLimit,
                                                      accepts: { awaited.accepts($0) }, statistics: statistics), handshake)
                    }
                }
        } catch {
            throw NetError.connectFailed(host: host, port: port, reason: Self.reason(error))
        }
        let connected = ContinuousClock.now - started
        var measuredRoundTrip = Double(connected.components.seconds) + Double(connected.components.attoseconds) / 1e18
        #if os(Linux)
        // A lost SYN makes the connect take a retransmission timeout (1 s)
        // more; the kernel's own sample of the round trip (from the TCP
        // timestamps, which tell the copies apart) does not.
        if pipelined, let info = try? await (asyncChannel.channel as? any SocketOptionProvider)?.getTCPInfo().get(), info.tcpi_rtt > 0 {
            measuredRoundTrip = min(measuredRoundTrip, Double(info.tcpi_rtt) / 1e6)
        }
        #endif
        let connectRoundTrip = measuredRoundTrip
        // TLS first: no frame leaves before the server has proved the pinned key.
        let serverFingerprint: CertificateFingerprint?
        if let tlsHandshake {
            do {
                serverFingerprint = try await tlsHandshake.get()
            } catch {
                try? await asyncChannel.channel.close()
                throw error
            }
        } else {
            serverFingerprint = nil
        }
        let remote = Framing.describe(asyncChannel.channel.remoteAddress)
        let connection: FramedConnection = await withCheckedContinuation { continuation in
            // The connection lives as long as this task: it reads replies until the channel closes.
            Task {
                try? await asyncChannel.executeThenClose { inbound, outbound in
                    let connection = FramedConnection(channel: asyncChannel.channel, outbound: outbound, remote: remote, answersProbes: answersProbes,
                                                      serverFingerprint: serverFingerprint, statistics: statistics)
                    awaited.set(connection)
                    connection.state.withLock { $0.connectRoundTrip = connectRoundTrip }
                    continuation.resume(returning: connection)
                    await connection.readLoop(inbound)
                }
            }
        }
        if pipelined {
            // Wait until the hello is in the channel, so that no request can pass it.
            let (sent, signal) = AsyncStream.makeStream(of: Void.self)
            Task {
                do {
                    try await connection.handshake(role: role, timeout: timeout, sent: { signal.finish() })
                } catch {
                    signal.finish()
                    connection.fail(with: .handshakeFailed(peer: remote, reason: "\(error)"))
                }
            }
            for await _ in sent {}
            return connection
        }
        do {
            try await connection.handshake(role: role, timeout: timeout)
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Fails every waiting request, and every later one, with `error`, and closes the connection.
    private func fail(with error: NetError) {
        failWaiting(with: error)
        close()
    }

    /// Fails every waiting request with `error`, and every later one with the
    /// first error the connection ended with.
    private func failWaiting(with error: NetError) {
        let waiting = state.withLock { state in
            if state.closedError == nil { state.closedError = error }
            defer { state.waiting = [:] }
            return state.waiting
        }
        for pending in waiting.values {
            pending.waiter.resume(.failure(error))
        }
    }

    /// Closes the connection; waiting requests fail.
    public func close() {
        channel.close(promise: nil)
    }

    /// Completes when the connection has closed.
    public func closed() async {
        try? await channel.closeFuture.get()
    }

    /// Whether the connection is still open.
    public var isOpen: Bool { channel.isActive && state.withLock { $0.closedError == nil } }

    /// Sends `message` and returns the reply. An `error` reply is thrown as
    /// ``NetError/wire(_:)`` carrying ``WireError/remote(code:message:)``.
    public func request(_ message: Message, timeout: TimeAmount = .seconds(30)) async throws -> Message {
        let reply = try await requestFrame(requestID: nil, timeout: timeout) { id throws(WireError) in try message.frame(requestID: id) }
        let decoded: Message
        do {
            decoded = try Message(frame: reply)
        } catch {
            throw NetError.wire(error)
        }
        if case let .error(refusal) = decoded { throw NetError.wire(refusal.wireError) }
        return decoded
    }

    /// Sends the frame `build` makes for a fresh request id and returns the reply frame as it came.
    ///
    /// - Parameter cancel: the frame that tells the other side the request
    ///   is withdrawn (a `chunkCancel`), sent when the calling task is
    ///   cancelled while the reply is awaited.
    public func requestFrame(timeout: TimeAmount = .seconds(30), cancel: (@Sendable (UInt32) -> Frame)? = nil,
                             _ build: (UInt32) throws(WireError) -> Frame) async throws -> Frame {
        try await requestFrame(requestID: nil, timeout: timeout, cancel: cancel, build)
    }

    /// - Parameter sent: called once the frame is handed to the channel (or could not be).
    private func requestFrame(requestID fixed: UInt32?, timeout: TimeAmount, cancel: (@Sendable (UInt32) -> Frame)? = nil,
                              sent: (@Sendable () -> Void)? = nil,
                              _ build: (UInt32) throws(WireError) -> Frame) async throws -> Frame {
        let id = fixed ?? takeRequestID()
        let frame: Frame
        do {
            frame = try build(id)
        } catch {
            sent?()
            throw NetError.wire(error)
        }
        let seconds = Double(timeout.nanoseconds) / 1e9
        let operation = frame.type.description
        // Cancelling the calling task fails the request at once with
        // CancellationError; a reply that comes later is dropped.
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Frame, any Error>) in
                let deadline = NIODeadline.now() + timeout
                let generation: Int?
                switch register(id, .task(continuation), deadline: deadline, operation: operation, seconds: seconds) {
                case let .failure(closed):
                    sent?()
                    continuation.resume(throwing: closed)
                    return
                case let .success(scheduled):
                    generation = scheduled
                }
                // Cancelled before the request was registered: the handler found nothing to fail.
                if Task.isCancelled {
                    sent?()
                    fail(id, with: CancellationError())
                    return
                }
                if let generation { scheduleSweep(at: deadline, generation: generation) }
                // Straight into the channel, not through the async writer in a
                // task of its own: a request is a few dozen bytes, and a task
                // per request cost more than the request.
                let remote = remote
                enqueue(frame) { [self] result in
                    sent?()
                    if case .failure = result { fail(id, with: NetError.connectionClosed(peer: remote)) }
                }
            }
        } onCancel: {
            // Still awaited, so sent or about to be: withdraw it on the wire too.
            if fail(id, with: CancellationError()), let cancel {
                enqueue(cancel(id))
            }
        }
    }

    /// Sends the frame `build` makes for a fresh request id without waiting
    /// for its reply: `reply` is called once, with the reply frame as it
    /// came or the error the request failed with (timed out, connection
    /// closed, unknown to the other side), unless ``withdraw(_:cancel:)``
    /// withdraws the request first. It is called on the task that reads the
    /// connection (a reply, the connection's end), on its event loop (a
    /// timeout), or before this returns (the connection had closed), so it
    /// should hand slow work on, or be worth holding the next reply back for.
    ///
    /// No task per request: a downloader asking for thousands of small chunks
    /// a second spent more on creating, scheduling and resuming tasks than on
    /// the requests.
    ///
    /// - Returns: the request's id, for ``withdraw(_:cancel:)``.
    @discardableResult
    public func send(timeout: TimeAmount = .seconds(30), _ build: (UInt32) throws(WireError) -> Frame,
                     reply: @escaping @Sendable (Result<Frame, any Error>) -> Void) -> UInt32 {
        let id = takeRequestID()
        let frame: Frame
        do {
            frame = try build(id)
        } catch {
            reply(.failure(NetError.wire(error)))
            return id
        }
        let deadline = NIODeadline.now() + timeout
        switch register(id, .handler(reply), deadline: deadline, operation: frame.type.description, seconds: Double(timeout.nanoseconds) / 1e9) {
        case let .failure(closed):
            reply(.failure(closed))
            return id
        case let .success(generation):
            if let generation { scheduleSweep(at: deadline, generation: generation) }
        }
        let remote = remote
        enqueue(frame) { [self] result in
            if case .failure = result { fail(id, with: NetError.connectionClosed(peer: remote)) }
        }
        return id
    }

    /// Withdraws request `id` (made with ``send(timeout:_:reply:)``) if its
    /// reply has not come: its handler will not be called, and `cancel` (a
    /// `chunkCancel`) tells the other side. Whether it was still awaited.
    @discardableResult
    public func withdraw(_ id: UInt32, cancel: @autoclosure () -> Frame?) -> Bool {
        guard state.withLock({ $0.waiting.removeValue(forKey: id) }) != nil else { return false }
        if let frame = cancel() { enqueue(frame) }
        return true
    }

    /// Hands `frame` to the channel; `written` is told once it is written or
    /// could not be.
    ///
    /// Frames made off the event loop wait in an outbox, and the first one
    /// in schedules a single hand-over that writes all that came meanwhile
    /// and flushes once. A downloader asking for several small chunks at
    /// once then costs one hop to the event loop and one `write` on the
    /// socket, not one of each per request (at 64 KiB chunks, thousands a
    /// second). Frames reach the socket in the order they were made, so a
    /// cancel always follows its request and a request the hello before it.
    private func enqueue(_ frame: Frame, written: (@Sendable (Result<Void, any Error>) -> Void)? = nil) {
        let schedule = state.withLock { state in
            state.outbox.append(Outgoing(frame: frame, written: written))
            return state.outbox.count == 1
        }
        guard schedule else { return }
        channel.eventLoop.execute { [self] in deliver() }
    }

    /// Writes what waits in the outbox, then flushes; on the event loop.
    private func deliver() {
        let batch = state.withLock { state in
            defer { state.outbox.removeAll(keepingCapacity: true) }
            return state.outbox
        }
        for item in batch {
            guard let written = item.written else {
                channel.write(OutgoingFrame.frame(item.frame), promise: nil)
                continue
            }
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete(written)
            channel.write(OutgoingFrame.frame(item.frame), promise: promise)
        }
        channel.flush()
    }

    /// The next request id (1 to 2^31 - 1, then 1 again).
    private func takeRequestID() -> UInt32 {
        state.withLock { state in
            let id = state.nextRequestID
            state.nextRequestID = state.nextRequestID >= 0x7FFF_FFFF ? 1 : state.nextRequestID + 1
            return id
        }
    }

    /// Registers request `id` as awaited until `deadline`, unless the
    /// connection has ended (the error it ended with); the sweep to schedule,
    /// if this deadline is the earliest.
    private func register(_ id: UInt32, _ waiter: Waiter, deadline: NIODeadline, operation: String, seconds: Double) -> Result<Int?, NetError> {
        state.withLock { state in
            if let error = state.closedError { return .failure(error) }
            state.waiting[id] = Pending(waiter: waiter, deadline: deadline, operation: operation, seconds: seconds)
            // One timer per connection, not one per request: scheduling
            // and cancelling a timer from off the event loop wakes it
            // twice per request, which at 64 KiB chunks is thousands of
            // wake-ups a second for nothing.
            guard state.sweepAt.map({ deadline < $0 }) ?? true else { return .success(nil) }
            state.sweepAt = deadline
            state.sweepGeneration += 1
            return .success(state.sweepGeneration)
        }
    }

    /// Fails the request `id` if it is still awaited; whether it was.
    @discardableResult
    private func fail(_ id: UInt32, with error: any Error) -> Bool {
        let pending = state.withLock { $0.waiting.removeValue(forKey: id) }
        pending?.waiter.resume(.failure(error))
        return pending != nil
    }

    private func scheduleSweep(at deadline: NIODeadline, generation: Int) {
        channel.eventLoop.scheduleTask(deadline: deadline) { [self] in sweep(generation: generation) }
    }

    /// Fails the requests past their deadline, and schedules the next sweep
    /// for the earliest deadline left, unless a later scheduling superseded
    /// this one.
    private func sweep(generation: Int) {
        let now = NIODeadline.now()
        let (expired, next): ([Pending], (NIODeadline, Int)?) = state.withLock { state in
            guard state.sweepGeneration == generation else { return ([], nil) }
            var expired: [Pending] = []
            var earliest: NIODeadline?
            for (id, pending) in state.waiting {
                if pending.deadline <= now {
                    expired.append(pending)
                    state.waiting.removeValue(forKey: id)
                } else if earliest.map({ pending.deadline < $0 }) ?? true {
                    earliest = pending.deadline
                }
            }
            state.sweepAt = earliest
            guard let earliest else { return (expired, nil) }
            state.sweepGeneration += 1
            return (expired, (earliest, state.sweepGeneration))
        }
        for pending in expired {
            pending.waiter.resume(.failure(NetError.timedOut(operation: pending.operation, seconds: pending.seconds)))
        }
        if let (deadline, generation) = next { scheduleSweep(at: deadline, generation: generation) }
    }

    private func handshake(role: String, timeout: TimeAmount, sent: (@Sendable () -> Void)? = nil) async throws {
        var machine = HandshakeStateMachine(role: .initiator, localRole: role, software: ShoalVersion.software)
        guard case let .send(hello) = machine.start() else { sent?(); return }
        let start = ContinuousClock.now
        let reply = try await requestFrame(requestID: 0, timeout: timeout, sent: sent) { id throws(WireError) in try hello.frame(requestID: id) }
        let roundTrip = ContinuousClock.now - start
        state.withLock { $0.handshakeRoundTrip = Double(roundTrip.components.seconds) + Double(roundTrip.components.attoseconds) / 1e18 }
        let message: Message
        do {
            message = try Message(frame: reply)
        } catch {
            throw NetError.wire(error)
        }
        switch machine.receive(message) {
        case let .established(version, _):
            state.withLock { $0.version = version }
        case let .fail(error, _):
            throw NetError.wire(error)
        case .send:
            throw NetError.wire(.handshakeFailed(reason: "unexpected handshake step"))
        }
    }

    private func readLoop(_ inbound: NIOAsyncChannelInboundStream<Frame>) async {
        var ending = NetError.connectionClosed(peer: remote)
        do {
            for try await frame in inbound {
                if frame.type == .checkActive {
                    guard answersProbes.load(ordering: .relaxed) else { continue }
                    // The other side asks whether we are alive: answer at once.
                    if let probe = try? CheckActive(frame: frame), let answer = try? Active(nonce: probe.nonce).frame(requestID: frame.requestID) {
                        try await outbound.write(answer)
                    }
                    continue
                }
                let pending = state.withLock { $0.waiting.removeValue(forKey: frame.requestID) }
                if let pending {
                    pending.waiter.resume(.success(frame))
                } else if frame.type == .error, frame.requestID == 0, let refusal = try? ErrorReply(frame: frame) {
                    // An error about no request in particular: the other side is about to
                    // close, and this says why. Requests still waiting fail with it.
                    ending = .wire(refusal.wireError)
                }
            }
        } catch let error as WireError {
            ending = .wire(error)
        } catch {}
        // A failed pipelined handshake has said why already: later requests get that.
        failWaiting(with: ending)
    }

    static func reason(_ error: any Error) -> String {
        if let error = error as? IOError { return error.description }
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("connectTimeout") { return "timed out" }
        return text
    }
}

/// The question a connection's frame decoder asks of every header: is this
/// frame awaited? Set once the connection exists (nothing is awaited before
/// its handshake, which is sent after).
private final class AwaitedReplies: Sendable {
    // A weak reference, not a closure: a closure kept in a generic container
    // comes back wrapped in a reabstraction thunk at every read, and this is
    // read for every frame.
    private struct Target: @unchecked Sendable { weak var connection: FramedConnection? }
    private let target = Mutex(Target(connection: nil))
    private let isSet = Atomic<Bool>(false)

    func set(_ connection: FramedConnection) {
        target.withLock { $0.connection = connection }
        isSet.store(true, ordering: .releasing)
    }

    func accepts(_ header: FrameHeader) -> Bool {
        // Before the connection exists its hello is not sent, so nothing is
        // awaited yet: only an error about no request in particular (why the
        // other side is closing) is read. A server that talks first is skipped.
        guard isSet.load(ordering: .acquiring) else { return header.type == .error && header.requestID == 0 }
        guard let connection = target.withLock({ $0.connection }) else { return false }
        return connection.awaits(header)
    }
}
