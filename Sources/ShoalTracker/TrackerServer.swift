import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import ShoalNet
import ShoalWire
import Synchronization

/// The tracker on the network: a ``FramedServer`` whose connections are
/// served one request at a time by a ``Tracker``, with liveness probes, a
/// handshake deadline, a deadline for logging in, and frame limits that stay
/// small until a session is open.
///
/// ```swift
/// let server = try await TrackerServer.start(configuration: configuration, logger: logger)
/// print("listening on \(server.host):\(server.port)")
/// await server.run()            // until server.shutdown()
/// ```
///
/// As a `Service` in a `ServiceGroup`, a graceful shutdown drains it: no new
/// connections, each request being handled is answered, then its connection
/// closes (idle ones at once). Cancellation closes everything at once.
public final class TrackerServer: Sendable, Service {
    public let tracker: Tracker
    public let configuration: TrackerConfiguration
    private let server: FramedServer
    private let store: any TrackerStore
    private let logger: Logger
    let connections: ConnectionTable
    /// Keeps the registry in step with the other instances on a shared store (PostgreSQL); nil: alone.
    private let sync: InstanceSync?

    /// The address it listens on (with the real port when 0 was asked for).
    public var host: String { server.host }
    public var port: Int { server.port }
    /// The connections being served (each from its accept until it closes).
    public var connectionCount: Int { server.connectionCount }

    private init(tracker: Tracker, server: FramedServer, store: any TrackerStore, configuration: TrackerConfiguration, logger: Logger, connections: ConnectionTable,
                 fingerprint: CertificateFingerprint?, sync: InstanceSync?) {
        self.fingerprint = fingerprint
        self.sync = sync
        self.tracker = tracker
        self.server = server
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.connections = connections
    }

    /// The SHA-256 fingerprint of the tracker's certificate; nil when it serves in clear.
    public let fingerprint: CertificateFingerprint?

    /// Each connection's write buffer: replies waiting for the socket past
    /// `high` bytes stop the connection's reads (``ReplyGate``) until they
    /// are down to `low`. Small, since a tracker's requests and replies are
    /// small and a thousand clients that never read must not add up; yet
    /// above a list page (12 KiB for 128 rows of names like `file-123.bin`):
    /// a reply past the high mark makes the channel unwritable until it is
    /// flushed, and each such flip goes through the pipeline and the
    /// connection's async writer, twice per reply.
    static let writeBuffer = ChannelOptions.Types.WriteBufferWaterMark(low: 8 * 1024, high: 16 * 1024)

    /// Opens the database, loads or makes the TLS certificate, and binds the
    /// listening socket. Connections and the ``Tracker`` actor run on
    /// `group`'s loops (a test that holds one of them busy gives its tracker
    /// a group of its own).
    public static func start(configuration: TrackerConfiguration, logger: Logger,
                             group: MultiThreadedEventLoopGroup = .singleton) async throws -> TrackerServer {
        let security = try Self.security(configuration, logger: logger)
        // One set of metrics for the tracker and its store (store latency on /metrics).
        let metrics = TrackerMetrics(factory: configuration.metricsFactory)
        let timing = configuration.storeTiming ?? (configuration.metricsFactory == nil ? nil : metrics.storeTiming)
        let store: any TrackerStore
        if let address = configuration.postgres {
            store = try await PostgresTrackerStore.open(address, instance: configuration.instance, logger: logger, timing: timing)
        } else {
            store = try SQLiteTrackerStore(path: configuration.databasePath, timing: timing)
        }
        let operatorToken: String
        do {
            operatorToken = try OperatorToken.create(at: configuration.operatorTokenFile)
        } catch {
            await store.close()
            throw error
        }
        let connections = ConnectionTable()
        let tracker = Tracker(store: store, configuration: configuration, logger: logger, operatorToken: operatorToken,
                              metrics: metrics, loop: group.next(), closeConnection: { id in connections.close(id) })
        // On a shared store: the other instances' sessions are mirrored before the first request.
        var sync: InstanceSync?
        if let shared = store as? PostgresTrackerStore {
            let instanceSync = InstanceSync(tracker: tracker, store: shared, leaseSeconds: configuration.leaseSeconds,
                                            resyncInterval: configuration.resyncInterval, logger: logger)
            do {
                try await instanceSync.loadOthers()
            } catch {
                await tracker.shutdown()
                await store.close()
                throw error
            }
            sync = instanceSync
        }
        let probeAfter = TimeAmount.seconds(configuration.probeInterval)
        let probeTimeout = TimeAmount.seconds(configuration.probeTimeout)
        let anonymousLimit = configuration.anonymousFrameLimit
        let server: FramedServer
        do {
            server = try await FramedServer.bind(
                host: configuration.host, port: configuration.port, group: group,
                maximumConnections: configuration.maximumConnections,
                handshakeTimeout: .seconds(configuration.handshakeTimeout),
                security: security,
                writeBuffer: Self.writeBuffer
            ) {
                let gate = FrameLimitGate()
                let replies = ReplyGate()
                // Every frame a peer sends is answered once, except `active` (its answer to a probe).
                let liveness = LivenessHandler(probeAfter: probeAfter, timeout: probeTimeout, answered: { $0 != .active }) { address in
                    logger.info("liveness: \(Framing.describe(address)) did not answer CheckActive within \(configuration.probeTimeout) s; dropping it")
                }
                // First, nearest the socket: what it answers from the cache
                // goes through no other handler (it tells `liveness` itself),
                // and every reply of the task passes it on the way out.
                let loopReplies = LoopReplyHandler(tracker: tracker, liveness: liveness, connections: connections)
                return FramedServer.ConnectionSetup(
                    limit: { type in type == .announce && gate.isOpen ? FrameHeader.maximumPayloadLength : anonymousLimit },
                    handlers: [loopReplies, gate, replies, liveness])
            }
        } catch {
            await store.close()
            await tracker.shutdown()
            throw error
        }
        let transport = security.fingerprint.map { "TLS, certificate SHA-256 \($0.grouped)" } ?? "in clear (--insecure)"
        let database = configuration.postgres.map { "PostgreSQL \($0)" } ?? configuration.databasePath
        logger.info("tracker listening on \(server.host):\(server.port), \(transport), database \(database)")
        logger.info("operator token for status written to \(configuration.operatorTokenFile) (mode 0600)")
        if sync != nil {
            let others = await tracker.connectedCount
            logger.info("tracker instance \(configuration.instance) shares the database with other instances (lease \(configuration.leaseSeconds) s; \(others) session\(others == 1 ? "" : "s") of others mirrored)")
        }
        return TrackerServer(tracker: tracker, server: server, store: store, configuration: configuration, logger: logger, connections: connections,
                             fingerprint: security.fingerprint, sync: sync)
    }

    /// The transport the configuration asks for, with its certificate loaded or made.
    private static func security(_ configuration: TrackerConfiguration, logger: Logger) throws -> ServerSecurity {
        let refusal = "this tracker speaks TLS only; leave out --insecure (the peer then pins the tracker's certificate fingerprint)"
        switch configuration.transport {
        case .plain:
            return .plain
        case let .identity(identity):
            return .tls(identity, plainRefusal: refusal)
        case let .tls(certificatePath, keyPath):
            let (identity, created) = try TLSIdentity.loadOrCreate(certificatePath: certificatePath, keyPath: keyPath, commonName: "shoal tracker")
            if created { logger.notice("made a self-signed TLS certificate \(certificatePath) (key \(keyPath), mode 0600)") }
            return .tls(identity, plainRefusal: refusal)
        }
    }

    /// Serves until ``shutdown()`` (or, in a service group, until it drains
    /// on graceful shutdown or stops on cancellation); then closes the database.
    public func run() async {
        let syncing = sync.map { sync in Task { await sync.run() } }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await server.run { connection in await self.serve(connection) }
            } onGracefulShutdown: {
                self.drain()
            }
        } onCancel: {
            self.shutdown()
        }
        // The sessions' closings are written (tracker.shutdown) while the leases are still renewed.
        // Bounded: a database that stopped answering (a partition, no reset)
        // must not hold the process past its drain; what was not written
        // expires with the leases. Once cancelled (the drain's deadline
        // passed, perhaps while this waits), everything left must end within
        // the service group's cancellation grace (5 s), past which the
        // library ends the process: 2 s for the writes, 1 s for the sync,
        // 1 s to close the store, counted from the cancellation at the latest.
        let tracker = self.tracker
        if await !Self.wait(atMost: 10, onceCancelled: 2, { await tracker.shutdown() }) {
            logger.warning("tracker stopping: store writes still unfinished; leaving them (their sessions expire with their leases)")
        }
        syncing?.cancel()
        if let syncing, await !Self.wait(atMost: 5, onceCancelled: 1, { await syncing.value }) {
            logger.warning("tracker stopping: instance sync did not stop in time; leaving it")
        }
        let store = self.store
        if await !Self.wait(atMost: 5, onceCancelled: 1, { await store.close() }) {
            logger.warning("tracker stopping: the store did not close in time; leaving it")
        }
        logger.info("tracker stopped")
    }

    /// Runs `work` and waits for it at most `seconds`, and at most
    /// `cancelled` seconds from when the calling task is cancelled; true if
    /// it finished in time (else it is left running, and this returns false).
    static func wait(atMost seconds: Double, onceCancelled cancelled: Double, _ work: @escaping @Sendable () async -> Void) async -> Bool {
        let waiting = ResumedOnce<Bool, Never>()
        let giveUp: @Sendable (Double) -> Void = { delay in
            Task { try? await Task.sleep(for: .seconds(delay)); waiting.resume(with: .success(false)) }
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiting.keep(continuation)
                Task { await work(); waiting.resume(with: .success(true)) }
                giveUp(seconds)
                if Task.isCancelled { giveUp(cancelled) }
            }
        } onCancel: {
            giveUp(cancelled)
        }
    }

    /// Stops accepting; each connection answers the request it is handling,
    /// if any, then closes (ending its session); ``run()`` then returns.
    /// Returns how many connections were handling a request.
    @discardableResult
    public func drain() -> Int {
        server.stopAccepting()
        let busy = connections.drain()
        logger.info("tracker draining: accepting no new connections; \(busy) connection\(busy == 1 ? "" : "s") handling requests")
        return busy
    }

    /// Stops accepting, closes every connection (ending their sessions); ``run()`` then returns.
    public func shutdown() {
        logger.info("tracker shutting down")
        server.shutdown()
    }

    private func serve(_ connection: FramedServer.Connection) async {
        let id = await tracker.newConnectionID()
        let channel = connection.channel.channel
        let loopReplies = try? await channel.pipeline.handler(type: LoopReplyHandler.self).get()
        connections.insert(id, channel, loopReplies)
        defer { connections.remove(id) }
        logger.debug("connection \(id) from \(connection.remote)")

        let loop = channel.eventLoop
        let loginDeadline = loop.scheduleTask(in: .seconds(configuration.anonymousTimeout)) { channel.close(promise: nil) }
        defer { loginDeadline.cancel() }
        let gate = try? await channel.pipeline.handler(type: FrameLimitGate.self).get()
        let liveness = try? await channel.pipeline.handler(type: LivenessHandler.self).get()
        let replies = try? await channel.pipeline.handler(type: ReplyGate.self).get()
        _ = try? await channel.setOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4 * 1024)).get()
        var machine = TrackerConnectionStateMachine()
        var reason = "closed the connection"
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                do {
                    _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "tracker")
                    liveness?.activate(on: channel.eventLoop)
                    while let frame = try await iterator.next() {
                        // Draining: no new request is taken; one being handled is answered first.
                        // What comes after is read and dropped, not left unread: closing a socket
                        // with unread bytes sends a reset, and the client's kernel then drops the
                        // replies it had received and not read yet. The drain closes the
                        // connection (``ConnectionTable/drain()``), which ends this loop.
                        guard connections.begin(id) else { continue }
                        defer { connections.end(id) }
                        // A client that does not read its replies waits here, holding nothing new.
                        await replies?.waitUntilWritable()
                        let message: Message
                        do throws(WireError) {
                            message = try Message(frame: frame)
                        } catch {
                            // A well-framed but undecodable request: refuse it, keep serving.
                            logger.notice("bad request from \(connection.remote): \(error)")
                            try await outbound.write(try error.reply.frame(requestID: frame.requestID))
                            continue
                        }
                        switch machine.receive(message) {
                        case .ignore:
                            continue
                        case let .answerProbe(nonce):
                            try await outbound.write(try Active(nonce: nonce).frame(requestID: frame.requestID))
                        case let .refuse(error):
                            try await outbound.write(try error.reply.frame(requestID: frame.requestID))
                        case .handle:
                            let outcome = await tracker.handle(message, parsed: tracker.parse(message), connection: id, host: connection.remoteHost)
                            switch outcome.session {
                            case let .loggedIn(token):
                                if let previous = machine.loggedIn(token), previous != token {
                                    await tracker.connectionClosed(previous, connection: id, reason: "logged in again on the same connection")
                                }
                                loginDeadline.cancel()
                                gate?.open()
                                if case let .message(.loggedIn(reply)) = outcome.reply { loopReplies?.bind(token: token.value, user: reply.user, connection: id) }
                            case .loggedOut:
                                machine.loggedOut()
                                gate?.close()
                                loopReplies?.unbind()
                            case .none:
                                break
                            }
                            try await outbound.write(Self.replyFrame(outcome.reply, requestID: frame.requestID))
                        }
                    }
                } catch let error as NetError {
                    reason = "broke the protocol (\(error))"
                    logger.notice("connection \(id) from \(connection.remote): \(error)")
                } catch let error as WireError {
                    reason = "broke the protocol (\(error))"
                    logger.notice("connection \(id) from \(connection.remote): \(error)")
                    if let frame = try? error.reply.frame(requestID: 0) { try? await outbound.write(frame) }
                }
            }
        } catch {
            logger.debug("connection \(id) ended: \(error)")
        }
        if liveness?.dropped == true { reason = "stopped answering CheckActive" }
        if let token = machine.closed() {
            await tracker.connectionClosed(token, connection: id, reason: reason)
        }
    }

    static func replyFrame(_ reply: Tracker.Reply, requestID: UInt32) throws -> Frame {
        switch reply {
        case let .message(message):
            do {
                return try message.frame(requestID: requestID)
            } catch {
                return try TrackerError.tooLarge(error.description).reply.frame(requestID: requestID)
            }
        case let .encoded(type, payload):
            return Frame(type: type, requestID: requestID, payload: payload)
        case let .details(draft):
            do throws(TrackerError) {
                return Frame(type: .fileDetails, requestID: requestID, payload: try draft.payload())
            } catch {
                return try error.reply.frame(requestID: requestID)
            }
        case let .refused(error):
            return try error.reply.frame(requestID: requestID)
        }
    }
}

/// Open connections by id, so a session taken over by a new login can have
/// its old connection closed, and a drain can close each once it is idle.
final class ConnectionTable: Sendable {
    private struct State {
        var channels: [UInt64: any Channel] = [:]
        /// What answers each connection's quick requests on its loop, told when its session ends.
        var loopReplies: [UInt64: LoopReplyHandler] = [:]
        /// Connections handling requests now, with how many (a connection's
        /// task, and its ``LoopReplyHandler`` with a request on its hop).
        var busy: [UInt64: Int] = [:]
        var draining = false
    }

    private let state = Mutex(State())

    func insert(_ id: UInt64, _ channel: any Channel, _ loopReplies: LoopReplyHandler? = nil) {
        let draining = state.withLock { state in
            state.channels[id] = channel
            state.loopReplies[id] = loopReplies
            return state.draining
        }
        if draining { channel.close(promise: nil) }
    }

    func remove(_ id: UInt64) {
        state.withLock { state in
            state.channels.removeValue(forKey: id)
            state.loopReplies.removeValue(forKey: id)
            state.busy.removeValue(forKey: id)
        }
    }

    /// Closes `id`, whose session the tracker has ended: from now on nothing
    /// more is answered on it, not even from the cache.
    func close(_ id: UInt64) {
        let (channel, loopReplies) = state.withLock { ($0.channels[id], $0.loopReplies[id]) }
        loopReplies?.unbind()
        channel?.close(promise: nil)
    }

    /// How many connections are handling requests now, how many are open
    /// on a loop other than `loop`, and how many are open (for tests).
    func census(besides loop: any EventLoop) -> (busy: Int, elsewhere: Int, open: Int) {
        state.withLock { state in (state.busy.count, state.channels.values.filter { $0.eventLoop !== loop }.count, state.channels.count) }
    }

    /// Whether the server is draining (no new request is taken).
    var isDraining: Bool { state.withLock { $0.draining } }

    /// A request arrived on `id`; false when draining (it is not taken).
    func begin(_ id: UInt64) -> Bool {
        state.withLock { state in
            guard !state.draining else { return false }
            state.busy[id, default: 0] += 1
            return true
        }
    }

    /// The request on `id` is answered; when draining, its connection closes
    /// once the answer is sent.
    func end(_ id: UInt64) {
        let closing = state.withLock { state -> (any Channel)? in
            guard let count = state.busy[id] else { return nil }
            if count > 1 {
                state.busy[id] = count - 1
                return nil
            }
            state.busy.removeValue(forKey: id)
            return state.draining ? state.channels[id] : nil
        }
        if let closing { Self.closeAfterWrites(closing) }
    }

    /// Closes every idle connection now, and each busy one once it has
    /// answered; how many were busy. An idle connection may still have its
    /// last reply on the way out (written by its task, not yet sent): it is
    /// closed after its writes too, never with a plain close, which would
    /// drop them.
    func drain() -> Int {
        let (idle, busy) = state.withLock { state in
            state.draining = true
            return (state.channels.filter { state.busy[$0.key] == nil }.map(\.value), state.busy.count)
        }
        for channel in idle { Self.closeAfterWrites(channel) }
        return busy
    }

    /// Closes the sending side once what is written has gone out (a FIN after
    /// the last reply), then the connection once the client has closed its
    /// side too, or 2 s later. Closing at once would lose the reply whenever
    /// the client had sent more (a probe, a request the drain does not take):
    /// a socket closed with unread bytes sends a reset, and the client's
    /// kernel drops what it had received and not yet read.
    private static func closeAfterWrites(_ channel: any Channel) {
        channel.close(mode: .output).whenComplete { _ in
            channel.eventLoop.scheduleTask(in: .milliseconds(2000)) { channel.close(promise: nil) }
        }
    }
}

extension TimeAmount {
    /// A duration from fractional seconds.
    static func seconds(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
}
