import Foundation
import NIOCore
import NIOPosix
import ShoalCore
import ShoalNet
import ShoalWire

/// One benchmark client of `shoal-bench tracker`, run entirely on an event
/// loop: a channel handler that plays a fixed script and times each
/// request, with no Swift task, actor hop, timer or JSON decoding per
/// request, so that the benchmark measures the tracker, not itself.
///
/// The script: on connecting, `hello`, `register`, `login` (then ``ready``
/// completes); each ``run(announcing:rounds:)`` then sends an optional
/// `announce` and `rounds` rounds of `list` + `details`, one request at a
/// time. Every request frame is encoded before the timed phase; replies are
/// checked by type and request id, not decoded (decoding 500-row lists here
/// would cost more CPU than the tracker spends serving them).
///
/// Confined to its channel's event loop (hence `@unchecked Sendable`): the
/// methods called from elsewhere hop onto it.
final class LoadClient: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = OutgoingFrame

    /// What each request is timed as.
    enum Kind: Int, CaseIterable {
        case connect, register, login, announce, list, details
        var name: String { ["connect+handshake", "register", "login", "announce", "list", "details"][rawValue] }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let index: Int
    let user: String
    let password: String
    let servePort: Int
    let fileCount: Int
    let manifest: Manifest
    let ready: EventLoopPromise<Void>
    let loop: any EventLoop

    private var context: ChannelHandlerContext?
    private var handshake = HandshakeStateMachine(role: .initiator, localRole: "peer", software: ShoalVersion.software)
    private var token = ""
    /// What is awaited now: the request's kind, id and expected reply type, and when it was sent.
    private var waiting: (kind: Kind, id: UInt32, reply: MessageType, sent: NIODeadline)?
    private var started = NIODeadline.now()
    private var nextID: UInt32 = 1
    /// The requests left in the current run, in order.
    private var script: [(Kind, Frame)] = []
    private var next = 0
    private var done: EventLoopPromise<Void>?
    private var listFrame: Frame?
    private var readyDone = false
    /// Latencies in milliseconds by ``Kind``, since the last ``takeSamples()``.
    private var samples = [[Double]](repeating: [], count: Kind.allCases.count)

    init(index: Int, fileCount: Int, manifest: Manifest, loop: any EventLoop) {
        self.index = index
        self.user = "bench\(index)"
        self.password = "pw-\(index)"
        self.servePort = 20_000 + index % 40_000
        self.fileCount = fileCount
        self.manifest = manifest
        self.loop = loop
        self.ready = loop.makePromise()
    }

    /// Connects to `address`, sets up framing (and TLS), and plays the script
    /// up to the login; ``ready`` completes then (or fails).
    static func connect(index: Int, to address: TrackerAddress, fileCount: Int, manifest: Manifest, loop: any EventLoop) -> LoadClient {
        let client = LoadClient(index: index, fileCount: fileCount, manifest: manifest, loop: loop)
        let remote = Framing.describe(host: address.host, port: address.port)
        client.started = .now()
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(120))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handshake = try address.security.configure(channel, remote: remote, timeout: .seconds(120))
                    handshake?.whenFailure { client.fail($0) }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(limit: { _ in FrameHeader.maximumPayloadLength })))
                    try sync.addHandler(FrameWriter())
                    try sync.addHandler(client)
                }
            }
            .connect(host: address.host, port: address.port)
            .whenFailure { client.fail($0) }
        return client
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        // With TLS, this waits in the TLS handler until the handshake is done.
        guard case let .send(hello) = handshake.start() else { return }
        send(.connect, .hello, try! hello.frame(requestID: 0), replyType: .helloAck)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(Failure(description: "\(user): the tracker closed the connection"))
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let awaited = waiting, frame.requestID == awaited.id else {
            if frame.type == .checkActive, let probe = try? CheckActive(frame: frame),
               let answer = try? Active(nonce: probe.nonce).frame(requestID: frame.requestID) {
                context.writeAndFlush(wrapOutboundOut(.frame(answer)), promise: nil)
            }
            return
        }
        let now = NIODeadline.now()
        waiting = nil
        samples[awaited.kind.rawValue].append(Double((now - awaited.sent).nanoseconds) / 1e6)
        guard frame.type == awaited.reply else {
            let reason = (try? ErrorReply(frame: frame)).map { "\($0.code): \($0.message)" } ?? "a \(frame.type)"
            fail(Failure(description: "\(user): \(awaited.kind.name) answered with \(reason)"))
            return
        }
        do {
            try advance(after: awaited.kind, reply: frame)
        } catch {
            fail(error)
        }
    }

    /// Sends what follows the reply to a `kind` request.
    private func advance(after kind: Kind, reply: Frame) throws {
        switch kind {
        case .connect:
            guard case .established = handshake.receive(try Message(frame: reply)) else { throw Failure(description: "\(user): the handshake failed") }
            send(.register, .register, try Register(user: user, password: password).frame(requestID: 0), replyType: .registered)
        case .register:
            send(.login, .login, try Login(user: user, password: password, port: servePort).frame(requestID: 0), replyType: .loggedIn)
        case .login:
            guard case let .loggedIn(session) = try Message(frame: reply) else { throw Failure(description: "\(user): login failed") }
            token = session.token
            listFrame = try ListFiles(token: token).frame(requestID: 0)
            readyDone = true
            ready.succeed()
        case .announce, .list, .details:
            sendNext()
        }
    }

    /// Plays an `announce` (if `announcing`) and `rounds` rounds of `list` +
    /// `details` (of other clients' files, a different one each round); the
    /// future completes after the last reply.
    func run(announcing: Bool, rounds: Int) -> EventLoopFuture<Void> {
        loop.flatSubmit { [self] in
            let promise = loop.makePromise(of: Void.self)
            do {
                script = []
                if announcing {
                    let file = AnnouncedFile(name: "file-\(index).bin", contentID: manifest.contentID, manifest: ManifestPayload(manifest))
                    script.append((.announce, try Announce(token: token, replace: true, files: [file]).frame(requestID: 0)))
                }
                for round in 0..<rounds {
                    script.append((.list, listFrame!))
                    let other = (index + round + 1) % fileCount
                    script.append((.details, try Details(token: token, name: "file-\(other).bin").frame(requestID: 0)))
                }
            } catch {
                promise.fail(error)
                return promise.futureResult
            }
            next = 0
            done = promise
            sendNext()
            return promise.futureResult
        }
    }

    /// The latencies recorded since the last call, by kind; clears them.
    func takeSamples() -> EventLoopFuture<[[Double]]> {
        loop.submit { [self] in
            defer { samples = [[Double]](repeating: [], count: Kind.allCases.count) }
            return samples
        }
    }

    func close() {
        loop.execute { [self] in context?.close(promise: nil) }
    }

    private func sendNext() {
        guard next < script.count else {
            let promise = done
            done = nil
            promise?.succeed()
            return
        }
        let (kind, frame) = script[next]
        next += 1
        let reply: MessageType = switch kind {
        case .announce: .announced
        case .list: .fileList
        case .details: .fileDetails
        default: .error
        }
        send(kind, frame.type, frame, replyType: reply)
    }

    private func send(_ kind: Kind, _ type: MessageType, _ frame: Frame, replyType: MessageType) {
        guard let context else { return }
        let id = nextID
        nextID += 1
        let sent: NIODeadline = kind == .connect ? started : .now()
        waiting = (kind, id, replyType, sent)
        context.writeAndFlush(wrapOutboundOut(.frame(Frame(type: type, requestID: id, payload: frame.payload))), promise: nil)
    }

    private func fail(_ error: any Error) {
        waiting = nil
        if !readyDone {
            readyDone = true
            ready.fail(error)
        }
        let promise = done
        done = nil
        promise?.fail(error)
    }
}

/// Where a benchmark finds a tracker: its address and how to trust it.
struct TrackerAddress: Sendable {
    var host: String
    var port: Int
    var security: ClientSecurity
}
