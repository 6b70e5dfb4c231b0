import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import ShoalNet
import ShoalWire
import Synchronization

/// A peer's server: answers `checkActive` and `chunkRequest` for whatever its
/// ``ChunkLibrary`` holds, to many downloaders at once, each connection in
/// its own task. A bad request gets an `error` reply and the connection goes
/// on; a broken frame closes that connection only.
///
/// It serves from ``start(host:port:library:compression:uploadLimit:identity:logger:)``
/// on. As a `Service` in a `ServiceGroup`, a graceful shutdown drains it
/// (``drain(deadline:)``) and cancellation closes every connection at once.
public final class PeerServer: Sendable, Service {
    public let library: ChunkLibrary
    private let server: FramedServer
    private let logger: Logger
    private let compression: CompressionPolicy
    /// The upload budget every connection draws its chunk replies from; nil: unlimited.
    public let uploadLimit: RateLimiter?
    private let task: Task<Void, Never>
    /// The request queue of each connection being served, so a drain reaches them all.
    private let queues = ConnectionQueues()

    /// The port it serves on.
    public var port: Int { server.port }
    public var host: String { server.host }

    /// Binds `host:port` (0 picks a free port) and starts serving. The host
    /// `::` means every interface, IPv6 and IPv4; where IPv6 is turned off it
    /// falls back to `0.0.0.0`.
    ///
    /// With an `identity`, every link is TLS with that certificate (and a
    /// downloader that connects in clear is told so); chunks then go out from
    /// memory, since TLS cannot `sendfile`.
    public static func start(host: String = Endpoint.allInterfaces, port: Int = 0, library: ChunkLibrary,
                             compression: CompressionPolicy = CompressionPolicy(), uploadLimit: RateLimiter? = nil,
                             identity: TLSIdentity? = nil, logger: Logger) async throws -> PeerServer {
        let security: ServerSecurity = identity.map {
            .tls($0, plainRefusal: "this peer serves its chunks over TLS only (it runs with --encrypt); update this downloader, which should have used TLS from the holder's key fingerprint")
        } ?? .plain
        func bind(_ host: String) async throws -> FramedServer {
            // Chunk replies queue up to 512 KiB per connection (not NIO's 64
            // KiB, which one 64 KiB chunk fills): the answering task then
            // waits for the socket once every few small chunks, not after each.
            try await FramedServer.bind(host: host, port: port, maximumConnections: 256, security: security,
                                        writeBuffer: .init(low: 256 * 1024, high: 512 * 1024)) {
                FramedServer.ConnectionSetup(
                    limit: { _ in 64 * 1024 },
                    handlers: [LivenessHandler(probeAfter: .seconds(30), timeout: .seconds(10))])
            }
        }
        let server: FramedServer
        do {
            server = try await bind(host)
        } catch where host == Endpoint.allInterfaces {
            logger.info("cannot listen on [::]:\(port) (\(error)); listening on IPv4 only")
            server = try await bind("0.0.0.0")
        }
        return PeerServer(server: server, library: library, compression: compression, uploadLimit: uploadLimit, identity: identity, logger: logger)
    }

    /// The certificate links are encrypted with; nil: links are in clear.
    public let identity: TLSIdentity?

    private init(server: FramedServer, library: ChunkLibrary, compression: CompressionPolicy, uploadLimit: RateLimiter?, identity: TLSIdentity?, logger: Logger) {
        self.identity = identity
        self.server = server
        self.library = library
        self.compression = compression
        self.uploadLimit = uploadLimit
        self.logger = logger
        let encrypted = identity != nil
        let queues = self.queues
        let serve: @Sendable (FramedServer.Connection) async -> Void = { [library, compression, uploadLimit, logger] connection in
            await Self.serve(connection, library: library, compression: compression, uploadLimit: uploadLimit, encrypted: encrypted,
                             queues: queues, logger: logger)
        }
        self.task = Task { await server.run(serve) }
    }

    /// Stops serving and waits until every connection is closed.
    public func stop() async {
        server.shutdown()
        await task.value
    }

    /// Stops serving gently and waits until every connection is closed:
    /// no new connection is accepted; each connection answers the requests
    /// it has already read, drops those that come after, closes its sending
    /// side once the answers are out, and ends when the downloader closes
    /// its side (a downloader then asks the other holders for the rest).
    /// Whatever is still open after `deadline` is closed at once.
    public func drain(deadline: Duration) async {
        beginDrain()
        let cut = Task { [server] in
            try await Task.sleep(for: deadline)
            server.shutdown()
        }
        await task.value
        cut.cancel()
    }

    /// Serves until the service group shuts down: a graceful shutdown drains
    /// the server (see ``drain(deadline:)``), cancellation (the group's deadline
    /// passed) closes every connection at once.
    public func run() async {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await task.value
            } onGracefulShutdown: {
                self.beginDrain()
            }
        } onCancel: {
            let open = self.server.connectionCount
            if open > 0 { self.logger.warning("stopping now: closing \(open) connection\(open == 1 ? "" : "s") still open") }
            self.server.shutdown()
        }
    }

    private func beginDrain() {
        server.stopAccepting()
        let draining = queues.drainAll()
        logger.notice("draining: accepting no new connections; \(draining) connection\(draining == 1 ? "" : "s") finishing the chunks asked for")
    }

    private static func serve(_ connection: FramedServer.Connection, library: ChunkLibrary, compression: CompressionPolicy,
                              uploadLimit: RateLimiter?, encrypted: Bool, queues: ConnectionQueues, logger: Logger) async {
        let channel = connection.channel.channel
        let allocator = channel.allocator
        let liveness = try? await channel.pipeline.handler(type: LivenessHandler.self).get()
        let files = ConnectionFiles()
        defer { files.closeAll() }
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
              do {
                var iterator = inbound.makeAsyncIterator()
                _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "peer")
                liveness?.activate(on: channel.eventLoop)
                // One task reads ahead (so a chunkCancel reaches requests still
                // queued), another answers in order.
                let queue = RequestQueue(limit: 64)
                let key = queues.insert(queue)
                defer { queues.remove(key) }
                let answering = Task {
                    defer {
                        // Draining: the answers are out; say so with a FIN once they are sent.
                        if queue.isDraining { channel.close(mode: .output, promise: nil) }
                    }
                    let compressor = ChunkCompressor(policy: compression, memo: library.memo)
                    var replies: [OutgoingFrame] = []
                    replies.reserveCapacity(Self.batch)
                    while let first = await queue.next() {
                        // What else is queued already goes out with it, in one
                        // hop to the event loop and one flush: with small
                        // chunks a hop per reply costs more than the reply.
                        var frame: Frame? = first
                        replies.removeAll(keepingCapacity: true)
                        while let next = frame {
                            var reply = Self.answer(next, library: library, compressor: compressor, files: files, allocator: allocator)
                            // TLS takes bytes, not file regions: read the chunk here, off the event loop.
                            if encrypted, case let .fileBacked(backed) = reply { reply = Self.inMemory(backed, allocator: allocator) }
                            // Chunks wait for the upload budget; refusals and liveness answers do not.
                            if let uploadLimit, reply.type == .chunkData { do { try await uploadLimit.acquire(reply.wireBytes) } catch { return } }
                            replies.append(reply)
                            frame = replies.count < Self.batch && uploadLimit == nil ? queue.nextQueued() : nil
                        }
                        do {
                            if replies.count == 1 {
                                try await outbound.write(replies[0])
                            } else {
                                try await outbound.write(contentsOf: replies)
                            }
                        } catch {
                            // The connection is gone: stop reading too.
                            channel.close(promise: nil)
                            return
                        }
                    }
                }
                defer { answering.cancel() }
                do {
                    while let frame = try await iterator.next() {
                        if frame.type == .chunkCancel {
                            _ = try ChunkCancel(frame: frame)
                            queue.cancel(requestID: frame.requestID)
                        } else if frame.type != .active {
                            await queue.push(frame)
                        }
                    }
                } catch {
                    queue.finish()
                    await answering.value
                    throw error
                }
                queue.finish()
                await answering.value
              } catch let error as WireError {
                // A broken frame: say why, then this connection (only) closes.
                logger.notice("peer connection from \(connection.remote): \(error)")
                if let reply = try? error.reply.frame(requestID: 0) { try? await outbound.write(reply) }
              }
            }
        } catch {
            logger.debug("peer connection from \(connection.remote) ended: \(error)")
        }
        // Writes still pending hold file regions: close the files once they are done or failed.
        channel.close(promise: nil)
        try? await channel.closeFuture.get()
    }

    /// Replies written together at most: those already queued when the
    /// answering task takes the first (a batch is one hop to the event loop
    /// and one flush).
    static let batch = 8

    /// A file-backed frame with its file bytes read into memory (for a TLS link).
    private static func inMemory(_ backed: FileBackedFrame, allocator: ByteBufferAllocator) -> OutgoingFrame {
        do {
            var payload = allocator.buffer(capacity: Int(backed.header.length))
            payload.writeImmutableBuffer(backed.start)
            var rest = try backed.rest.readAll(allocator: allocator)
            payload.writeBuffer(&rest)
            return .frame(Frame(type: backed.header.type, flags: backed.header.flags, requestID: backed.header.requestID, payload: payload))
        } catch {
            let refusal = ChunkLibrary.Refusal.readFailed("\(error)").reply
            return .frame((try? refusal.frame(requestID: backed.header.requestID)) ?? Frame(type: .error, requestID: backed.header.requestID, payload: ByteBuffer()))
        }
    }

    /// The reply to one frame from a downloader: a chunk, a liveness answer, or a refusal.
    private static func answer(_ frame: Frame, library: ChunkLibrary, compressor: ChunkCompressor, files: ConnectionFiles,
                               allocator: ByteBufferAllocator) -> OutgoingFrame {
        switch frame.type {
        case .chunkRequest:
            do throws(WireError) {
                let request = try ChunkRequest(frame: frame)
                do throws(ChunkLibrary.Refusal) {
                    return try library.frame(for: request, requestID: frame.requestID, compressor: compressor, files: files, allocator: allocator)
                } catch {
                    return .frame(try error.reply.frame(requestID: frame.requestID))
                }
            } catch {
                return .frame((try? error.reply.frame(requestID: frame.requestID)) ?? frame)
            }
        case .checkActive:
            let nonce = (try? CheckActive(frame: frame))?.nonce ?? 0
            return .frame((try? Active(nonce: nonce).frame(requestID: frame.requestID)) ?? frame)
        default:
            let refusal = ErrorReply(code: .badRequest, message: "\(frame.type) is not a request a peer serves; ask for chunks")
            return .frame((try? refusal.frame(requestID: frame.requestID)) ?? frame)
        }
    }
}

/// The request queues of the connections a ``PeerServer`` serves, so that a
/// drain reaches every one, including one accepted while it starts.
final class ConnectionQueues: Sendable {
    private struct State {
        var queues: [ObjectIdentifier: RequestQueue] = [:]
        var draining = false
    }

    private let state = Mutex(State())

    /// Registers a connection's queue (drained at once if the server already is).
    func insert(_ queue: RequestQueue) -> ObjectIdentifier {
        let key = ObjectIdentifier(queue)
        let draining = state.withLock { state in
            state.queues[key] = queue
            return state.draining
        }
        if draining { queue.drain() }
        return key
    }

    func remove(_ key: ObjectIdentifier) {
        _ = state.withLock { $0.queues.removeValue(forKey: key) }
    }

    /// Drains every queue, now and from now on; how many connections were being served.
    func drainAll() -> Int {
        let queues = state.withLock { state in
            state.draining = true
            return Array(state.queues.values)
        }
        for queue in queues { queue.drain() }
        return queues.count
    }
}
