import NIOCore
import NIOPosix
import ShoalWire
import Synchronization

/// A listening socket that hands each accepted connection, already framed, to
/// a handler running in its own child task. One failing connection never
/// stops the server; ``shutdown()`` closes the listener and every connection.
///
/// At most `maximumConnections` are served at once: the next one gets an
/// `error` `busy` and is closed, so idle connections cannot grow memory
/// without bound. A connection whose `hello` has not arrived within
/// `handshakeTimeout` of its accept is closed (``HelloDeadline``).
///
/// Both happen on the connection's event loop as it is accepted, not in the
/// tasks serving connections: when Swift concurrency's few threads are all
/// busy those start late, and an overloaded server must still refuse and
/// close connections on time.
public final class FramedServer: Sendable {
    /// An accepted connection, framed.
    public struct Connection: Sendable {
        public let channel: NIOAsyncChannel<Frame, OutgoingFrame>
        /// `host:port` of the other side.
        public let remote: String
        /// The other side's IP address, as the tracker records it.
        public let remoteHost: String
    }

    /// The connections being served, each from its accept until it closes.
    final class OpenConnections: Sendable {
        private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
        let maximum: Int
        init(maximum: Int) { self.maximum = maximum }

        /// Counts `channel` in if there is room (until it closes); false if the server is full.
        func admit(_ channel: any Channel) -> Bool {
            let key = ObjectIdentifier(channel)
            let admitted = channels.withLock { open in
                guard open.count < maximum else { return false }
                open[key] = channel
                return true
            }
            if admitted { channel.closeFuture.whenComplete { _ in self.channels.withLock { _ = $0.removeValue(forKey: key) } } }
            return admitted
        }

        var count: Int { channels.withLock { $0.count } }
        var all: [any Channel] { channels.withLock { Array($0.values) } }
    }

    /// Where the server listens (with the real port when 0 was asked for).
    public let host: String
    public let port: Int
    /// Each accepted connection, or nil for one refused as `busy` (already answered and closing).
    private let listener: NIOAsyncChannel<NIOAsyncChannel<Frame, OutgoingFrame>?, Never>
    private let open: OpenConnections

    private init(listener: NIOAsyncChannel<NIOAsyncChannel<Frame, OutgoingFrame>?, Never>, host: String, port: Int, open: OpenConnections) {
        self.listener = listener
        self.host = host
        self.port = port
        self.open = open
    }

    /// How one accepted connection is set up.
    public struct ConnectionSetup: Sendable {
        /// The largest payload accepted, per message type (may consult a ``FrameLimitGate``).
        public var limit: @Sendable (MessageType) -> Int
        /// Handlers added after the codec.
        public var handlers: [any ChannelHandler & Sendable]
        public init(limit: @escaping @Sendable (MessageType) -> Int = { _ in FrameHeader.maximumPayloadLength }, handlers: [any ChannelHandler & Sendable] = []) {
            self.limit = limit
            self.handlers = handlers
        }
    }

    /// Binds `host:port` (0 picks a free port).
    ///
    /// - Parameters:
    ///   - security: in clear, or TLS (a client that speaks in clear is told so and closed).
    ///   - writeBuffer: how many bytes each connection may have queued for
    ///     the socket before its writer waits (NIO's default: 64 KiB, which a
    ///     single chunk of a peer fills, so the writer would stop and start
    ///     again for every chunk).
    ///   - handshakeTimeout: how long after its accept a connection may take
    ///     to send its first frame before it is closed.
    ///   - setup: called once per accepted connection.
    public static func bind(
        host: String, port: Int,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        maximumConnections: Int = 1024,
        handshakeTimeout: TimeAmount = .seconds(10),
        security: ServerSecurity = .plain,
        writeBuffer: ChannelOptions.Types.WriteBufferWaterMark = .init(low: 32 * 1024, high: 64 * 1024),
        setup: @escaping @Sendable () -> ConnectionSetup = { ConnectionSetup() }
    ) async throws -> FramedServer {
        let open = OpenConnections(maximum: maximumConnections)
        let listener: NIOAsyncChannel<NIOAsyncChannel<Frame, OutgoingFrame>?, Never>
        do {
            listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.writeBufferWaterMark, value: writeBuffer)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try security.configure(channel)
                        guard open.admit(channel) else {
                            // The deadline here only bounds a refusal that cannot go out (a TLS handshake never finished).
                            try channel.pipeline.syncOperations.addHandlers(FrameWriter(), BusyRefusal(), HelloDeadline(timeout: handshakeTimeout))
                            return nil
                        }
                        let setup = setup()
                        return try Framing.configure(channel, limit: setup.limit,
                                                     extraHandlers: [HelloDeadline(timeout: handshakeTimeout)] + setup.handlers)
                    }
                }
        } catch {
            throw NetError.bindFailed(host: host, port: port, reason: FramedConnection.reason(error))
        }
        let bound = listener.channel.localAddress?.port ?? port
        return FramedServer(listener: listener, host: host, port: bound, open: open)
    }

    /// The number of connections being served.
    public var connectionCount: Int { open.count }

    /// Accepts connections until ``shutdown()``, running `handler` for each in
    /// its own task. Returns when the listener and every connection are closed.
    public func run(_ handler: @escaping @Sendable (Connection) async -> Void) async {
        await withDiscardingTaskGroup { group in
            try? await listener.executeThenClose { inbound in
                for try await child in inbound {
                    guard let child else { continue }
                    let channel = child.channel
                    let remoteAddress = channel.remoteAddress
                    let connection = Connection(channel: child, remote: Framing.describe(remoteAddress), remoteHost: Self.host(of: remoteAddress))
                    group.addTask {
                        await handler(connection)
                        // Make sure the socket is closed whatever the handler did.
                        try? await channel.close()
                    }
                }
            }
        }
    }

    /// The other side's IP address, normalized: a dual-stack listener sees
    /// IPv4 clients as `::ffff:a.b.c.d`, recorded as `a.b.c.d`.
    static func host(of address: SocketAddress?) -> String {
        guard let ip = address?.ipAddress else { return "unknown" }
        return (try? HostAddress(ip).value) ?? ip
    }

    /// Stops accepting: the listening socket closes, connections being
    /// served go on. ``run(_:)`` returns once the last of them ends. (The
    /// first step of draining a server; ``shutdown()`` is the abrupt stop.)
    public func stopAccepting() {
        listener.channel.close(promise: nil)
    }

    /// Stops accepting and closes every connection.
    public func shutdown() {
        listener.channel.close(promise: nil)
        for channel in open.all { channel.close(promise: nil) }
    }
}

/// Answers a connection over the server's limit with `error` `busy`
/// (request id 0) as soon as it is active, then closes it: its sending side
/// once that is written (over TLS: once the TLS handshake let it out), the
/// rest 2 s later. What the client sends meanwhile is read and dropped: a
/// socket closed with unread bytes sends a reset, and the client's kernel
/// would drop the reply it had not read yet.
final class BusyRefusal: ChannelInboundHandler, @unchecked Sendable {
    // All state is touched on the channel's event loop only.
    typealias InboundIn = ByteBuffer

    static let reply = ErrorReply(code: .busy, message: "the server is serving its maximum number of connections; retry later")
    private var refused = false

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(_ context: ChannelHandlerContext) {
        guard !refused else { return }
        refused = true
        let channel = context.channel
        guard let frame = try? Self.reply.frame(requestID: 0) else {
            channel.close(promise: nil)
            return
        }
        context.writeAndFlush(NIOAny(OutgoingFrame.frame(frame))).whenComplete { _ in
            channel.close(mode: .output).whenComplete { _ in
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
        }
    }
}

extension FramedServer {
    /// The responder's half of the handshake on a fresh connection: reads
    /// `hello`, answers, and returns the agreed version, or sends the error
    /// and throws. Any frame before `hello` fails the connection.
    public static func acceptHandshake(
        _ iterator: inout NIOAsyncChannelInboundStream<Frame>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<OutgoingFrame>,
        localRole: String
    ) async throws -> Int {
        var machine = HandshakeStateMachine(role: .responder, localRole: localRole, software: ShoalVersion.software)
        guard let frame = try await iterator.next() else { throw NetError.connectionClosed(peer: "client") }
        let message: Message
        do {
            message = try Message(frame: frame)
        } catch {
            if let reply = try? error.reply.frame(requestID: 0) { try? await outbound.write(reply) }
            throw NetError.wire(error)
        }
        switch machine.receive(message) {
        case let .established(version, reply):
            if let reply { try await outbound.write(try reply.frame(requestID: frame.requestID)) }
            return version
        case let .fail(error, reply):
            if let reply, let frame = try? reply.frame(requestID: frame.requestID) { try? await outbound.write(frame) }
            throw NetError.wire(error)
        case .send:
            throw NetError.wire(.handshakeFailed(reason: "unexpected handshake step"))
        }
    }
}
