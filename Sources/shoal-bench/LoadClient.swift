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
/// completes); each ``run()`` then sends an optional
/// `announce` and `rounds` rounds of `list` + `details`, one request at a
/// time. Every request frame is encoded before the timed phase
/// (``prepare(announcing:rounds:)``); replies are
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

        /// The reply a script request of this kind expects.
        var replyType: MessageType {
            switch self {
            case .announce: .announced
            case .list: .fileList
            case .details: .fileDetails
            case .connect: .helloAck
            case .register: .registered
            case .login: .loggedIn
            }
        }
    }

    /// What a reply says, for an error message: the error's code and text, or its type.
    static func describe(_ frame: Frame) -> String {
        (try? ErrorReply(frame: frame)).map { "\($0.code): \($0.message)" } ?? "a \(frame.type)"
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
    /// When each client's paced `announce` was answered, shared by the clients of one run.
    let announces: AnnounceLog

    private var context: ChannelHandlerContext?
    private var handshake = HandshakeStateMachine(role: .initiator, localRole: "peer", software: ShoalVersion.software)
    private var token = ""
    /// What is awaited now: the request's kind, id and expected reply type, and when it was sent.
    private var waiting: (kind: Kind, id: UInt32, reply: MessageType, sent: NIODeadline)?
    private var started = NIODeadline.now()
    private var nextID: UInt32 = 1
    /// The requests of the current run, in order, each with the client
    /// whose file it asks about (a `details`; nil for the others).
    private var script: [(kind: Kind, frame: Frame, detailsOf: Int?)] = []
    private var next = 0
    private var done: EventLoopPromise<Void>?
    private var readyDone = false
    /// Latencies in milliseconds by ``Kind``, since the last ``takeSamples()``.
    private var samples = [[Double]](repeating: [], count: Kind.allCases.count)
    /// Paced runs (``runPaced(start:period:)``): when the next request is due,
    /// the time between two, and the requests sent and not answered yet.
    private var pacing: (nextDue: NIODeadline, period: TimeAmount)?
    private var inFlight: [UInt32: (kind: Kind, reply: MessageType, due: NIODeadline, sent: NIODeadline, detailsOf: Int?)] = [:]
    /// Paced requests answered: when each was due, its kind and latency (ms).
    private var timeline: [(due: NIODeadline, kind: Kind, milliseconds: Double)] = []

    /// Ask for `list` rows as arrays (``ListFiles/compact``), as `shoal` does.
    private let compactList: Bool

    init(index: Int, fileCount: Int, manifest: Manifest, compactList: Bool, announces: AnnounceLog, loop: any EventLoop) {
        self.index = index
        self.announces = announces
        self.compactList = compactList
        self.user = Self.user(index)
        self.password = Self.password(index)
        self.servePort = Self.servePort(index)
        self.fileCount = fileCount
        self.manifest = manifest
        self.loop = loop
        self.ready = loop.makePromise()
    }

    /// Client `index`'s account, password and the port its login announces.
    static func user(_ index: Int) -> String { "bench\(index)" }
    static func password(_ index: Int) -> String { "pw-\(index)" }
    static func servePort(_ index: Int) -> Int { 20_000 + index % 40_000 }

    /// Connects to `address`, sets up framing (and TLS), and plays the script
    /// up to the login; ``ready`` completes then (or fails).
    static func connect(index: Int, to address: TrackerAddress, fileCount: Int, manifest: Manifest, compactList: Bool,
                        announces: AnnounceLog, loop: any EventLoop) -> LoadClient {
        let client = LoadClient(index: index, fileCount: fileCount, manifest: manifest, compactList: compactList, announces: announces, loop: loop)
        let remote = Framing.describe(host: address.host, port: address.port)
        client.started = .now()
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(120))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // A whole reply (a list page is about 18 KB) in one read: with
            // NIO's default, smaller first reads leave the rest of a reply
            // for the loop's next pass over all 500 clients, and the reply
            // is timed one pass late.
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 64 * 1024, maximum: 256 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handshake = try address.security.configure(channel, remote: remote, timeout: .seconds(120))
                    handshake?.whenFailure { client.fail($0) }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(SkimmingFrameDecoder()))
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
        if pacing != nil, let sent = inFlight.removeValue(forKey: frame.requestID) {
            // Timed from when the request was due, not from when it went out
            // (a late send is the client's delay, and must not hide the tracker's).
            let latency = Double((NIODeadline.now() - sent.due).nanoseconds) / 1e6
            samples[sent.kind.rawValue].append(latency)
            timeline.append((sent.due, sent.kind, latency))
            if sent.kind == .announce && frame.type == sent.reply { announces.answered(index, at: .now()) }
            guard frame.type == sent.reply || announces.raced(sent.detailsOf, sent: sent.sent, reply: frame) else {
                fail(Failure(description: "\(user): \(sent.kind.name) answered with \(Self.describe(frame))"))
                return
            }
            if next == script.count && inFlight.isEmpty {
                pacing = nil
                let promise = done
                done = nil
                promise?.succeed()
            }
            return
        }
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
            fail(Failure(description: "\(user): \(awaited.kind.name) answered with \(Self.describe(frame))"))
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
            readyDone = true
            ready.succeed()
        case .announce, .list, .details:
            sendNext()
        }
    }

    /// Encodes the script of the next run: an `announce` (if `announcing`)
    /// and `rounds` rounds of `list` + `details` (of other clients' files, a
    /// different one each round). Done before the timed phase, so that the
    /// clients' one event loop is not busy encoding while replies wait.
    func prepare(announcing: Bool, rounds: Int) -> EventLoopFuture<Void> {
        loop.submit { [self] in
            script = try Self.script(index: index, token: token, manifest: manifest, fileCount: fileCount, compactList: compactList,
                                     announcing: announcing, rounds: rounds)
        }
    }

    /// Client `index`'s requests for a run on session `token`: an `announce`
    /// of its file (if `announcing`), then `rounds` rounds of `list` +
    /// `details` of another client's file, a different one each round.
    static func script(index: Int, token: String, manifest: Manifest, fileCount: Int, compactList: Bool,
                       announcing: Bool, rounds: Int) throws -> [(kind: Kind, frame: Frame, detailsOf: Int?)] {
        var script: [(kind: Kind, frame: Frame, detailsOf: Int?)] = []
        if announcing {
            let file = AnnouncedFile(name: "file-\(index).bin", contentID: manifest.contentID, manifest: ManifestPayload(manifest))
            script.append((.announce, try Announce(token: token, replace: true, files: [file]).frame(requestID: 0), nil))
        }
        let list = try ListFiles(token: token, compact: compactList ? true : nil).frame(requestID: 0)
        for round in 0..<rounds {
            script.append((.list, list, nil))
            let other = (index + round + 1) % fileCount
            script.append((.details, try Details(token: token, name: "file-\(other).bin").frame(requestID: 0), other))
        }
        return script
    }

    /// Plays the script ``prepare(announcing:rounds:)`` made, one request at
    /// a time; the future completes after the last reply.
    func run() -> EventLoopFuture<Void> {
        loop.flatSubmit { [self] in
            let promise = loop.makePromise(of: Void.self)
            next = 0
            done = promise
            sendNext()
            return promise.futureResult
        }
    }

    /// Plays the script ``prepare(announcing:rounds:)`` made at a fixed pace,
    /// whatever the replies do (an open loop): the first request is due at
    /// `start`, each next one `period` later; ``tick(now:)`` sends those due.
    /// Each request is timed from when it was due. The future completes after
    /// the last reply.
    func runPaced(start: NIODeadline, period: TimeAmount) -> EventLoopFuture<Void> {
        loop.flatSubmit { [self] in
            let promise = loop.makePromise(of: Void.self)
            next = 0
            done = promise
            inFlight = [:]
            pacing = (start, period)
            return promise.futureResult
        }
    }

    /// Sends the paced requests due by `now` (on the loop).
    func tick(now: NIODeadline) {
        guard var pace = pacing, let context else { return }
        var wrote = false
        while next < script.count && pace.nextDue <= now {
            let (kind, frame, detailsOf) = script[next]
            next += 1
            let id = nextID
            nextID += 1
            inFlight[id] = (kind, kind.replyType, pace.nextDue, now, detailsOf)
            context.write(wrapOutboundOut(.frame(Frame(type: frame.type, requestID: id, payload: frame.payload))), promise: nil)
            wrote = true
            pace.nextDue = pace.nextDue + pace.period
        }
        pacing = pace
        if wrote { context.flush() }
    }

    /// The latencies recorded since the last call, by kind; clears them.
    func takeSamples() -> EventLoopFuture<[[Double]]> {
        loop.submit { [self] in
            defer { samples = [[Double]](repeating: [], count: Kind.allCases.count) }
            return samples
        }
    }

    /// The paced requests answered since the last call: when each was due, its kind and latency; clears them.
    func takeTimeline() -> EventLoopFuture<[(due: NIODeadline, kind: Kind, milliseconds: Double)]> {
        loop.submit { [self] in
            defer { timeline = [] }
            return timeline
        }
    }

    /// Closes the connection; the future completes once it is closed.
    @discardableResult
    func close() -> EventLoopFuture<Void> {
        loop.flatSubmit { [self] in
            guard let context else { return loop.makeSucceededVoidFuture() }
            let closed = context.channel.closeFuture
            context.close(promise: nil)
            return closed
        }
    }

    private func sendNext() {
        guard next < script.count else {
            let promise = done
            done = nil
            promise?.succeed()
            return
        }
        let (kind, frame, _) = script[next]
        next += 1
        send(kind, frame.type, frame, replyType: kind.replyType)
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

/// The benchmark clients' decoder: frames whose payload the client reads
/// (handshake, login, errors, probes: small ones) come whole; the payload
/// of a large one (a `fileList` page, a `fileDetails` with its manifest) is
/// skipped as it arrives, and the frame comes, empty, when its last byte
/// has: it is timed as received, without the client copying kilobytes it
/// never reads into one buffer. The tracker's own decoder is not at stake.
struct SkimmingFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = Frame

    /// Payloads up to this size are kept.
    static let keptPayload = 4096

    private var header: FrameHeader?
    private var remaining = 0

    mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        while true {
            guard let header else {
                guard let read = try FrameHeader.read(from: &buffer, maximumPayloadLength: FrameHeader.maximumPayloadLength) else { return nil }
                header = read
                remaining = Int(read.length)
                continue
            }
            if header.length <= Self.keptPayload {
                guard let payload = buffer.readSlice(length: Int(header.length)) else { return nil }
                self.header = nil
                return Frame(type: header.type, flags: header.flags, requestID: header.requestID, payload: payload)
            }
            let skipped = min(remaining, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: skipped)
            remaining -= skipped
            guard remaining == 0 else { return nil }
            self.header = nil
            return Frame(type: header.type, flags: header.flags, requestID: header.requestID, payload: ByteBuffer())
        }
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        try decode(buffer: &buffer)
    }
}

/// When each client's paced `announce` was answered, so that a `details`
/// sent before the file it asks about was announced, and answered
/// `not_found`, is told apart from a real error: the tracker may well not
/// have taken that announce yet (the protocol orders the requests of one
/// connection, not those of different ones). Confined to the clients' event loop.
final class AnnounceLog: @unchecked Sendable {
    private var answeredAt: [Int: NIODeadline] = [:]
    /// `details` answered `not_found` because they were sent before their file's announce was answered.
    private(set) var racing = 0

    func answered(_ client: Int, at time: NIODeadline) {
        answeredAt[client] = time
    }

    /// Whether `reply` to a `details` about client `target`'s file, sent at
    /// `sent`, is a `not_found` the protocol allows (that announce had not
    /// been answered when the details went out); counts it if so.
    func raced(_ target: Int?, sent: NIODeadline, reply: Frame) -> Bool {
        guard let target, reply.type == .error, (try? ErrorReply(frame: reply))?.code == .notFound else { return false }
        if let announced = answeredAt[target], announced <= sent { return false }
        racing += 1
        return true
    }

    /// The count so far (on the clients' loop).
    func racingCount(on loop: any EventLoop) -> EventLoopFuture<Int> {
        loop.submit { self.racing }
    }
}
