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
/// without bound.
public final class FramedServer: Sendable {
    /// An accepted connection, framed.
    public struct Connection: Sendable {
        public let channel: NIOAsyncChannel<Frame, OutgoingFrame>
        /// `host:port` of the other side.
        public let remote: String
        /// The other side's IP address, as the tracker records it.
        public let remoteHost: String
    }

    /// Where the server listens (with the real port when 0 was asked for).
    public let host: String
    public let port: Int
    private let listener: NIOAsyncChannel<NIOAsyncChannel<Frame, OutgoingFrame>, Never>
    private let maximumConnections: Int
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    private init(listener: NIOAsyncChannel<NIOAsyncChannel<Frame, OutgoingFrame>, Never>, host: String, port: Int, maximumConnections: Int) {
        self.listener = listener
        self.host = host
        self.port = port
        self.maximumConnections = maximumConnections
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
    ///   - setup: called once per accepted connection.
    public static func bind(
        host: String, port: Int,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        maximumConnections: Int = 1024,
        security: ServerSecurity = .plain,
        writeBuffer: ChannelOptions.Types.WriteBufferWaterMark = .init(low: 32 * 1024, high: 64 * 1024),
        setup: @escaping @Sendable () -> ConnectionSetup = { ConnectionSetup() }
    ) async throws -> FramedServer {
        let listener: NIOAsyncChannel<NIOAsyncChannel<Frame, OutgoingFrame>, Never>
        do {
            listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.writeBufferWaterMark, value: writeBuffer)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let setup = setup()
                        try security.configure(channel)
                        return try Framing.configure(channel, limit: setup.limit, extraHandlers: setup.handlers)
                    }
                }
        } catch {
            throw NetError.bindFailed(host: host, port: port, reason: FramedConnection.reason(error))
        }
        let bound = listener.channel.localAddress?.port ?? port
        return FramedServer(listener: listener, host: host, port: bound, maximumConnections: maximumConnections)
    }

    /// The number of connections being served.
    public var connectionCount: Int { open.withLock { $0.count } }

    /// Accepts connections until ``shutdown()``, running `handler` for each in
    /// its own task. Returns when the listener and every connection are closed.
    public func run(_ handler: @escaping @Sendable (Connection) async -> Void) async {
        await withDiscardingTaskGroup { group in
            try? await listener.executeThenClose { inbound in
                for try await child in inbound {
                    let channel = child.channel
                    let key = ObjectIdentifier(channel)
                    let admitted = open.withLock { open in
                        guard open.count < maximumConnections else { return false }
                        open[key] = channel
                        return true
                    }
                    let remoteAddress = channel.remoteAddress
                    let connection = Connection(channel: child, remote: Framing.describe(remoteAddress), remoteHost: Self.host(of: remoteAddress))
                    group.addTask {
                        guard admitted else {
                            await Self.refuseBusy(child)
                            return
                        }
                        await handler(connection)
                        // Make sure the socket is closed whatever the handler did.
                        try? await channel.close()
                        self.open.withLock { _ = $0.removeValue(forKey: key) }
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
        let channels = open.withLock { Array($0.values) }
        for channel in channels { channel.close(promise: nil) }
    }

    private static func refuseBusy(_ child: NIOAsyncChannel<Frame, OutgoingFrame>) async {
        try? await child.executeThenClose { _, outbound in
            let reply = ErrorReply(code: .busy, message: "the server is serving its maximum number of connections; retry later")
            if let frame = try? reply.frame(requestID: 0) { try await outbound.write(frame) }
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
