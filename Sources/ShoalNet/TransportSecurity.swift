#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOSSL
import NIOTLS
import ShoalWire
import Synchronization

/// How a server's connections are carried: in clear (`--insecure`), or in
/// TLS with this identity. A TLS server answers a client that speaks in clear
/// with a plain `error` frame that says so, then closes; a server in clear
/// does the same to a client that opens with a TLS handshake
/// (``TransportMismatchRefuser``).
public enum ServerSecurity: Sendable {
    case plain
    /// - Parameter plainRefusal: what a client that connects in clear is told.
    case tls(TLSIdentity, plainRefusal: String)

    /// The fingerprint clients should pin, if TLS.
    public var fingerprint: CertificateFingerprint? {
        if case let .tls(identity, _) = self { identity.fingerprint } else { nil }
    }

    /// Adds the TLS handlers (if any) in front of what is already there. Call on the channel's loop.
    func configure(_ channel: any Channel) throws {
        let sync = channel.pipeline.syncOperations
        guard case let .tls(identity, refusal) = self else {
            try sync.addHandler(TransportMismatchRefuser(tls: false, message: TransportMismatchRefuser.clearServerMessage))
            return
        }
        try sync.addHandler(TransportMismatchRefuser(tls: true, message: refusal))
        try sync.addHandler(NIOSSLServerHandler(context: identity.serverContext))
        try sync.addHandler(FileRegionReader())
    }
}

/// How a client connection is carried: in clear, or in TLS checked against a
/// fingerprint (the certificate's chain and host name are not checked: the
/// pin is the whole trust).
public enum ClientSecurity: Sendable {
    case plain
    case tls(TLSPin)

    /// Adds the client's TLS handlers (if any) to a channel set up by hand
    /// (``FramedConnection/connect(host:port:role:group:timeout:maximumPayloadLength:preallocationLimit:answersProbes:security:statistics:pipelined:)``
    /// does this itself); returns what completes with the server's
    /// fingerprint once the pin is checked, nil in clear. Call on the channel's loop.
    public func configure(_ channel: any Channel, remote: String, timeout: TimeAmount) throws -> EventLoopFuture<CertificateFingerprint>? {
        guard case let .tls(pin) = self else { return nil }
        return try pin.configure(channel, remote: remote, timeout: timeout).promise.futureResult
    }
}

/// What a TLS client expects of the server's certificate, and what to tell
/// the user when it gets something else.
public struct TLSPin: Sendable {
    /// The fingerprint the server must present; nil accepts any (trust on
    /// first use: the caller records ``FramedConnection/serverFingerprint``).
    public var expected: CertificateFingerprint?
    /// What the user should do when the server presents another fingerprint.
    public var mismatchAdvice: String
    /// What the user should do when the server does not speak TLS at all.
    public var plainAdvice: String

    public init(expected: CertificateFingerprint?, mismatchAdvice: String, plainAdvice: String) {
        self.expected = expected
        self.mismatchAdvice = mismatchAdvice
        self.plainAdvice = plainAdvice
    }

    /// One client context for every connection: building one per connection costs.
    static let context: NIOSSLContext = {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        // The verification callback replaces chain checks; the pin is checked there.
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([])
        return try! NIOSSLContext(configuration: configuration)
    }()

    /// Adds the client's TLS handlers; returns what reports the handshake's outcome. Call on the channel's loop.
    func configure(_ channel: any Channel, remote: String, timeout: TimeAmount) throws -> TLSClientHandshake {
        let handshake = TLSClientHandshake(pin: self, remote: remote, promise: channel.eventLoop.makePromise())
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(PlainServerDetector(handshake: handshake))
        let expected = self.expected
        try sync.addHandler(try NIOSSLClientHandler(context: Self.context, serverHostname: nil, customVerificationCallback: { certificates, promise in
            guard let leaf = certificates.first, let der = try? leaf.toDERBytes() else {
                promise.succeed(.failed)
                return
            }
            let presented = CertificateFingerprint(derBytes: der)
            handshake.presented = presented
            promise.succeed(expected == nil || expected == presented ? .certificateVerified : .failed)
        }))
        try sync.addHandler(TLSHandshakeWatch(handshake: handshake))
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            handshake.fail(NetError.timedOut(operation: "the TLS handshake with \(remote)", seconds: Double(timeout.nanoseconds) / 1e9))
            channel.close(promise: nil)
        }
        handshake.promise.futureResult.whenComplete { _ in deadline.cancel() }
        return handshake
    }
}

/// The outcome of a client's TLS handshake: the fingerprint the server
/// presented, and a future that completes when the handshake is done (or
/// fails with a ``NetError`` that says what to do). Used on the channel's
/// event loop only.
final class TLSClientHandshake: @unchecked Sendable {
    let pin: TLSPin
    let remote: String
    let promise: EventLoopPromise<CertificateFingerprint>
    private let state = Mutex<(presented: CertificateFingerprint?, done: Bool)>((nil, false))

    init(pin: TLSPin, remote: String, promise: EventLoopPromise<CertificateFingerprint>) {
        self.pin = pin
        self.remote = remote
        self.promise = promise
    }

    var presented: CertificateFingerprint? {
        get { state.withLock { $0.presented } }
        set { state.withLock { $0.presented = newValue } }
    }

    func succeed() {
        let presented: CertificateFingerprint?? = state.withLock { state in
            guard !state.done else { return .none }
            state.done = true
            return .some(state.presented)
        }
        guard case let .some(fingerprint) = presented else { return }
        if let fingerprint {
            promise.succeed(fingerprint)
        } else {
            promise.fail(NetError.tlsFailed(peer: remote, reason: "the server presented no certificate"))
        }
    }

    func fail(_ error: any Error) {
        let first = state.withLock { state in
            defer { state.done = true }
            return !state.done
        }
        guard first else { return }
        promise.fail(explain(error))
    }

    /// The error to show for `error` during the handshake.
    private func explain(_ error: any Error) -> NetError {
        if let expected = pin.expected, let presented, presented != expected {
            return .fingerprintMismatch(peer: remote, expected: expected.grouped, presented: presented.grouped, advice: pin.mismatchAdvice)
        }
        if let error = error as? NetError { return error }
        return .tlsFailed(peer: remote, reason: "\(error)")
    }
}

/// A client's first handler: if the server's first bytes are not a TLS
/// record, the server speaks in clear (`--insecure`): fail at once with a
/// message that says so, instead of a puzzling TLS error.
final class PlainServerDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let handshake: TLSClientHandshake

    init(handshake: TLSClientHandshake) { self.handshake = handshake }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        // TLS records start with 0x16 (handshake) or 0x15 (alert); a Shoal frame with its version, 1.
        if first == 0x16 || first == 0x15 {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } else {
            handshake.fail(NetError.notTLS(peer: handshake.remote, advice: handshake.pin.plainAdvice))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshake.fail(NetError.tlsFailed(peer: handshake.remote, reason: "the connection closed during the TLS handshake; \(handshake.pin.plainAdvice)"))
        context.fireChannelInactive()
    }
}

/// After the client's TLS handler: completes the handshake's future when TLS is up, fails it on an error.
final class TLSHandshakeWatch: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let handshake: TLSClientHandshake

    init(handshake: TLSClientHandshake) { self.handshake = handshake }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { handshake.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshake.fail(NetError.connectionClosed(peer: handshake.remote))
        context.fireChannelInactive()
    }
}

/// A server's first handler, which judges the client's first byte: a TLS
/// handshake record starts with `0x16`, a Shoal frame with its version (1).
/// A client that speaks the other way than this server (in clear to a TLS
/// server, TLS to a server in clear) gets a plain `error` frame saying so,
/// and the connection closes: nobody waits for a handshake that will never
/// come, and the answer goes out here, on the connection's event loop,
/// however busy the task that would serve it is. Otherwise it steps out of
/// the pipeline.
final class TransportMismatchRefuser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    /// What a client that opens with a TLS handshake is told by a server in clear.
    /// (Peers serve in clear without `--encrypt`, trackers with `--insecure`: the words fit both.)
    static let clearServerMessage = "this side speaks Shoal in clear, not TLS, and got the start of a TLS handshake; connect to it in clear"
    /// Whether this server speaks TLS.
    private let tls: Bool
    private let message: String
    private var refused = false

    init(tls: Bool, message: String) {
        self.tls = tls
        self.message = message
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        if (first == 0x16) == tls {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        refused = true
        var out = context.channel.allocator.buffer(capacity: 256)
        if let frame = try? ErrorReply(code: .badRequest, message: message).frame(requestID: 0) { frame.write(to: &out) }
        // Completes on this event loop: the context may be used there.
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in bound.value.close(promise: nil) }
    }
}

/// Between a TLS handler and the ``FrameWriter``: TLS cannot `sendfile`, so a
/// file region is read into memory here and sent as bytes. (Peers that
/// encrypt materialize their chunks before they get here; this keeps any
/// other file-backed frame from reaching the TLS handler, which takes bytes only.)
final class FileRegionReader: ChannelOutboundHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case let .fileRegion(region) = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        do {
            let buffer = try region.readAll(allocator: context.channel.allocator)
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        } catch {
            promise?.fail(error)
        }
    }
}

extension FileRegion {
    /// The region's bytes, read with `pread`.
    public func readAll(allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let count = readableBytes
        var buffer = allocator.buffer(capacity: count)
        let start = Int64(readerIndex)
        try fileHandle.withUnsafeFileDescriptor { fd in
            _ = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
                var done = 0
                while done < count {
                    let n = pread(fd, out.baseAddress! + done, count - done, off_t(start + Int64(done)))
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw IOError(errnoCode: n < 0 ? errno : EIO, reason: "pread") }
                    done += n
                }
                return count
            }
        }
        return buffer
    }
}
