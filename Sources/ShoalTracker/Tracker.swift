import Foundation
import Logging
import NIOCore
import NIOPosix
import ShoalCore
import ShoalNet
import ShoalWire

/// The tracker's brain: accounts and everything else that outlives a
/// process (through a ``TrackerStore``), its view of sessions and holdings
/// (a ``TrackerRegistry``, written through to the store when the store keeps
/// the registry), the download ids reports must carry (``DownloadGrants``)
/// and the login throttle, behind one actor. ``TrackerServer`` feeds it one
/// request at a time per connection.
///
/// Slow work (password hashing, the store) runs off the actor, so it keeps
/// serving other connections meanwhile; the state it reads after such a wait
/// is read again, never assumed. Writes of one session's registry changes
/// reach the store in the order they were made (``persist(_:touching:_:)``).
public actor Tracker {
    /// What a request did to the connection's session.
    public enum SessionChange: Sendable, Equatable {
        case none
        case loggedIn(SessionToken)
        case loggedOut
    }

    /// The answer to a request.
    public enum Reply: Sendable {
        case message(Message)
        /// A reply already encoded (the cached file list), as a payload of this type.
        case encoded(MessageType, ByteBuffer)
        /// A `fileDetails` reply taken from the registry, to be encoded off the actor (``DetailsDraft/payload()``).
        case details(DetailsDraft)
        case refused(TrackerError)
    }

    /// A request's outcome: the reply to send, and the session change.
    public struct Outcome: Sendable {
        public var reply: Reply
        public var session: SessionChange
    }

    let store: any TrackerStore
    /// This tracker process among those sharing the store: the owner of the sessions it opens.
    public nonisolated let instance: String
    /// How long a session's lease runs past its last renewal (seconds).
    private let leaseSeconds: Double
    /// The last store write of each session's registry changes, which the next one waits for.
    var writes: [SessionToken: (id: UInt64, task: Task<Void, any Error>)] = [:]
    /// Sessions opened in the registry whose opening is not written to the store yet.
    var unstored: Set<SessionToken> = []
    /// The last store write that touched each content, which the next one touching it waits for.
    private var contentWrites: [ContentID: (id: UInt64, task: Task<Void, any Error>)] = [:]
    private var nextWrite: UInt64 = 0
    private let hasher: PasswordHasher
    private let pool: NIOThreadPool
    let logger: Logger
    private let now: @Sendable () -> Double
    /// Every change is published to ``served`` (the generation, what
    /// `details` may show differently, and the list's rows it touched), so
    /// the event loops never answer from a cache older than the registry.
    var registry: TrackerRegistry {
        didSet {
            let touched = registry.takeTouched()
            served.publish(registry.generation, touched: touched, listRows: touched.isEmpty ? [] : registry.listRows(touching: touched))
        }
    }
    private var throttle: LoginThrottle
    private var registrations: RegistrationThrottle
    private let reputation: ReputationRule
    /// The token `status` must carry; nil: `status` is refused to everyone.
    private let operatorToken: String?
    /// Called to close a connection whose session was taken over by a new login.
    let closeConnection: @Sendable (UInt64) -> Void
    private var nextConnection: UInt64 = 0
    /// Replies encoded once per change of the registry, and the download
    /// ids they hand out, shared with the event loops (``LoopReplyHandler``).
    nonisolated let served: ServedReplies
    /// A hash to verify against when the user does not exist, so a wrong name
    /// takes as long as a wrong password (no user enumeration by timing).
    private let decoyHash: String
    /// Whether serving peers must announce a key fingerprint (`--require-encryption`).
    private let requireEncryption: Bool
    /// Counters and timings for `/metrics`.
    let metrics: TrackerMetrics
    /// The most files one `announce` may list.
    nonisolated let filesPerAnnounce: Int
    /// The event loop the actor runs on. A connection served by this loop
    /// has its `announce`, `list`, `details` and `manifest` answered without
    /// leaving the loop (``handleNow(_:parsed:connection:)``, called by
    /// ``LoopReplyHandler``); the other loops hand them over with one hop
    /// and take the reply back, rather than through a task and Swift
    /// concurrency's threads. Requests that wait (hashing, the store) still
    /// go through the connection's task, and suspend the actor as before.
    public nonisolated let loop: any EventLoop
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }

    public init(
        store: any TrackerStore, configuration: TrackerConfiguration, logger: Logger,
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
        operatorToken: String? = nil,
        loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
        closeConnection: @escaping @Sendable (UInt64) -> Void = { _ in }
    ) {
        self.init(store: store, configuration: configuration, logger: logger, now: now, operatorToken: operatorToken,
                  metrics: TrackerMetrics(factory: configuration.metricsFactory), loop: loop, closeConnection: closeConnection)
    }

    /// With `metrics` shared with the store's timing hook (``TrackerServer``).
    init(
        store: any TrackerStore, configuration: TrackerConfiguration, logger: Logger,
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
        operatorToken: String? = nil, metrics: TrackerMetrics,
        loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
        closeConnection: @escaping @Sendable (UInt64) -> Void = { _ in }
    ) {
        // A `SelectableEventLoop` (NIOPosix's): it is its own executor, and lives as long as its group.
        self.loop = loop
        self.store = store
        self.instance = configuration.instance
        self.leaseSeconds = configuration.leaseSeconds
        self.reputation = configuration.reputation
        self.throttle = configuration.loginThrottle
        self.registrations = configuration.registrationThrottle
        self.operatorToken = operatorToken
        self.hasher = PasswordHasher(rounds: configuration.passwordRounds)
        // Several instances on one store give chunk maps versions from one shared sequence.
        self.registry = TrackerRegistry(limits: configuration.limits, versions: store.keepsRegistry ? .shared : .local)
        self.filesPerAnnounce = configuration.limits.filesPerAnnounce
        self.served = ServedReplies(listPageSize: configuration.limits.listPage, now: now)
        self.requireEncryption = configuration.requireEncryption
        self.metrics = metrics
        self.logger = logger
        self.now = now
        self.closeConnection = closeConnection
        self.decoyHash = PasswordHasher(rounds: configuration.passwordRounds).hash(UUID().uuidString)
        self.pool = NIOThreadPool(numberOfThreads: max(2, System.coreCount))
        pool.start()
    }

    /// Waits for the store writes still under way, then stops the worker
    /// threads (after the server has stopped, before the store closes).
    public func shutdown() async {
        while !writes.isEmpty {
            let pending = writes.values.map(\.task)
            for task in pending { _ = await task.result }
            // Finished writes remove themselves, but perhaps not yet.
            for (token, write) in writes where pending.contains(write.task) { writes.removeValue(forKey: token) }
        }
        contentWrites = [:]
        try? await pool.shutdownGracefully()
    }

    /// A fresh id for a new connection.
    public func newConnectionID() -> UInt64 {
        nextConnection += 1
        return nextConnection
    }

    /// Connected peers right now.
    public var connectedCount: Int { registry.connectedCount }

    /// An `announce` parsed (names checked, every manifest checked against
    /// its content id), or why it cannot be; nil for other messages. Pure and
    /// off the actor: a connection's task does it before ``handle(_:parsed:connection:host:)``,
    /// so a burst of announces parses on every core instead of one after
    /// another on the actor.
    public nonisolated func parse(_ message: Message) -> Result<Announcement, TrackerError>? {
        guard case let .announce(request) = message else { return nil }
        let maximum = filesPerAnnounce
        return Result { () throws(TrackerError) in try Announcement(request, maximumFiles: maximum) }
    }

    /// Handles one request from `connection` (whose peer is at `host`),
    /// counted and timed (from here to the reply) for `/metrics`. `parsed`:
    /// what ``parse(_:)`` gave for it, if the caller did that first.
    public func handle(_ message: Message, parsed: Result<Announcement, TrackerError>? = nil, connection: UInt64, host: String) async -> Outcome {
        let started = ContinuousClock.now
        let outcome = await respond(to: message, parsed: parsed, connection: connection, host: host)
        counted(message.type, outcome, since: started)
        return outcome
    }

    /// As ``handle(_:parsed:connection:host:)``, at once, for a request
    /// answered without waiting for anything (``respondNow(to:parsed:connection:)``);
    /// nil for the others, which go to `handle`. Called on ``loop``, inside
    /// the actor (`assumeIsolated`).
    func handleNow(_ message: Message, parsed: Result<Announcement, TrackerError>?, connection: UInt64) -> Outcome? {
        let started = ContinuousClock.now
        guard let outcome = respondNow(to: message, parsed: parsed, connection: connection) else { return nil }
        counted(message.type, outcome, since: started)
        return outcome
    }

    private func counted(_ type: MessageType, _ outcome: Outcome, since started: ContinuousClock.Instant) {
        if case .refused = outcome.reply {
            metrics.request(type, refused: true, duration: .now - started)
        } else {
            metrics.request(type, refused: false, duration: .now - started)
        }
        metrics.registry(connected: registry.connectedCount, files: registry.contentCount)
    }

    /// The outcome of a request that needs no wait: `list`, `details`,
    /// `manifest`, and `announce` when nothing of it goes to the store
    /// (the store does not keep the registry, as SQLite's does not); nil
    /// for every other request.
    private func respondNow(to message: Message, parsed: Result<Announcement, TrackerError>?, connection: UInt64) -> Outcome? {
        do throws(TrackerError) {
            switch message {
            case let .announce(request):
                guard !store.keepsRegistry else { return nil }
                let token = try session(request.token, connection)
                let announcement = try (parsed ?? parse(message))!.get()
                return Outcome(reply: .message(.announced(Announced(files: try announce(announcement, of: token).files))), session: .none)
            case let .list(request):
                _ = try session(request.token, connection)
                return Outcome(reply: try fileList(after: request.after, compact: request.compact == true), session: .none)
            case let .details(request):
                return Outcome(reply: try details(request, connection: connection), session: .none)
            case let .manifest(request):
                let token = try session(request.token, connection)
                let slice = try registry.manifestPart(token, contentID: request.contentID, from: request.from)
                return Outcome(reply: .message(.manifestPart(ManifestPart(slice))), session: .none)
            default:
                return nil
            }
        } catch {
            return Outcome(reply: .refused(error), session: .none)
        }
    }

    /// Applies `announcement` to the registry (not to the store).
    private func announce(_ announcement: Announcement, of token: SessionToken) throws(TrackerError) -> TrackerRegistry.AnnounceResult {
        let result = try registry.announce(token, announcement, now: now())
        // Debug, not info: peers announce as their downloads progress,
        // thousands a second on a busy tracker; /metrics counts them.
        // The line is only built when it is logged.
        logger.debug("announce: \(registry.peer(token)?.user ?? "?") shares \(result.files) file\(result.files == 1 ? "" : "s") (\(registry.peer(token)?.holdings.values.filter { !$0.isComplete }.count ?? 0) partial) after \(announcement.replace ? "a full" : "an incremental") announce of \(announcement.entries.count)")
        return result
    }

    private func respond(to message: Message, parsed: Result<Announcement, TrackerError>?, connection: UInt64, host: String) async -> Outcome {
        if let outcome = respondNow(to: message, parsed: parsed, connection: connection) { return outcome }
        do {
            switch message {
            case let .register(request):
                return Outcome(reply: .message(.registered(try await register(request, host: host))), session: .none)
            case let .login(request):
                let keyFingerprint = try checkKeyFingerprint(request)
                let (reply, token) = try await login(request, keyFingerprint: keyFingerprint, connection: connection, host: host)
                return Outcome(reply: .message(.loggedIn(reply)), session: .loggedIn(token))
            case let .logout(request):
                let token = try session(request.token, connection)
                let peer = registry.logout(token)
                if let peer { logger.info("logout: \(peer.user) (\(registry.connectedCount) connected)") }
                if store.keepsRegistry {
                    try await persist(token, touching: peer?.holdings.keys ?? [:].keys) { store in try await store.sessionClosed(token) }
                }
                return Outcome(reply: .message(.loggedOut(LoggedOut())), session: .loggedOut)
            case let .announce(request):
                // Here when it goes to the store too (else answered by respondNow).
                let token = try session(request.token, connection)
                let announcement = try (parsed ?? parse(message))!.get()
                try await ensureMapVersions(TrackerRegistry.versionsNeeded(for: announcement))
                let result = try announce(announcement, of: token)
                if store.keepsRegistry { try await stored(result, of: token) }
                return Outcome(reply: .message(.announced(Announced(files: result.files))), session: .none)
            case let .report(request):
                return Outcome(reply: .message(.reported(try await report(request, connection: connection))), session: .none)
            case let .status(request):
                return Outcome(reply: .message(.trackerStatus(try await status(request, host: host))), session: .none)
            default:
                throw TrackerError.badRequest("\(message.type) is not a request a tracker serves")
            }
        } catch let error as TrackerError {
            return Outcome(reply: .refused(error), session: .none)
        } catch {
            return Outcome(reply: .refused(.storage("\(error)")), session: .none)
        }
    }

    /// The connection carrying `token` closed: the session ends, its holdings go.
    public func connectionClosed(_ token: SessionToken, connection: UInt64, reason: String) {
        guard let peer = registry.peer(token), peer.connection == connection else { return }
        registry.logout(token)
        metrics.registry(connected: registry.connectedCount, files: registry.contentCount)
        if store.keepsRegistry { enqueueWrite(token, touching: peer.holdings.keys) { store in try await store.sessionClosed(token) } }
        logger.info("disconnect: \(peer.user) \(reason); its \(peer.holdings.count) file\(peer.holdings.count == 1 ? "" : "s") withdrawn (\(registry.connectedCount) connected)")
    }

    // MARK: - Requests

    private func register(_ request: Register, host: String) async throws -> Registered {
        let name: UserName
        do { name = try UserName(request.user) } catch { throw TrackerError.invalidName(error) }
        try Self.checkPassword(request.password)
        // Taken before the hash, like a login attempt; given back if no account is made.
        let wait = registrations.take(address: host, now: now())
        guard wait == 0 else {
            logger.notice("register refused: \(host) registered too many accounts lately")
            throw TrackerError.tooManyRegistrations(retryAfterSeconds: wait)
        }
        let hasher = self.hasher
        let store = self.store
        let password = request.password
        do {
            let hash = try await runBlocking { hasher.hash(password) }
            try await store.createAccount(Account(user: name.value, passwordHash: hash))
        } catch {
            registrations.refund(address: host)
            throw error
        }
        let accounts = (try? await store.accountCount()) ?? 0
        logger.info("register: \(name.value) (\(accounts) account\(accounts == 1 ? "" : "s"))")
        return Registered(user: name.value)
    }

    private func login(_ request: Login, keyFingerprint: String?, connection: UInt64, host: String) async throws -> (LoggedIn, SessionToken) {
        let name: UserName
        do { name = try UserName(request.user) } catch { throw TrackerError.invalidName(error) }
        try Self.checkPassword(request.password)
        guard (0...65_535).contains(request.port) else {
            throw TrackerError.badRequest("port \(request.port) is not a TCP port (0 ... 65535)")
        }
        let served = try Self.servingHost(advertised: request.host, observed: host)
        // Checked and reserved in one step, before the hash: the attempt
        // counts as a failure until the password proves right, so parallel
        // connections cannot each get a guess in while the others hash.
        let wait = throttle.begin(user: name.value, address: host, now: now())
        guard wait == 0 else {
            metrics.loginFailed(throttled: true)
            logger.notice("login refused: \(name.value) from \(host) is throttled for \(wait) s after repeated failures")
            throw TrackerError.tooManyAttempts(user: name.value, retryAfterSeconds: wait)
        }
        let store = self.store
        let hasher = self.hasher
        let decoy = decoyHash
        let password = request.password
        let found = try await store.account(named: name.value)
        let hash = found?.passwordHash ?? decoy
        let verified = try await runBlocking { hasher.verify(password, against: hash) }
        guard verified, let account = found else {
            throttle.attemptFailed(user: name.value, address: host, now: now())
            metrics.loginFailed(throttled: false)
            logger.notice("login failed: \(name.value) from \(host)")
            throw TrackerError.badCredentials
        }
        throttle.succeeded(user: name.value, address: host)
        metrics.loginSucceeded()
        let token = SessionToken.random()
        let peer = TrackerRegistry.Peer(
            user: account.user, host: served, port: request.port, connection: connection,
            countDownloads: account.countDownloads, countFailures: account.countFailures, bytesServed: account.bytesServed)
        let replaced = try registry.login(token: token, peer: peer)
        registry.setKeyFingerprint(token, keyFingerprint)
        if let (_, replaced) = replaced {
            logger.info("login: \(account.user) logged in again; the previous session (\(replaced.host):\(replaced.port)) is closed")
            // Another instance's session is closed there, when it reads that this one replaced it.
            if !replaced.isRemote, replaced.connection != connection { closeConnection(replaced.connection) }
        }
        if store.keepsRegistry {
            unstored.insert(token)
            defer { unstored.remove(token) }
            let stored = StoredSession(token: token, instance: instance, user: account.user, host: served, port: request.port,
                                       keyFingerprint: keyFingerprint, leaseExpiry: now() + leaseSeconds)
            do {
                if let (old, oldPeer) = replaced {
                    try await persist(old, touching: oldPeer.holdings.keys) { store in try await store.sessionClosed(old) }
                }
                try await persist(token, touching: []) { store in try await store.sessionOpened(stored) }
            } catch {
                registry.logout(token)
                throw error
            }
        }
        let advertised = served == host ? "" : ", advertising \(served)"
        logger.info("login: \(account.user) from \(host)\(advertised), serving on port \(request.port) (\(registry.connectedCount) connected)")
        return (LoggedIn(token: token.value, user: account.user, countDownloads: account.countDownloads, countFailures: account.countFailures), token)
    }

    /// The key fingerprint a login announces, normalized to 64 lowercase hex
    /// digits; refused when malformed, or missing from a serving peer when
    /// the tracker requires encryption (a tool's session, port 0, serves nothing).
    private func checkKeyFingerprint(_ request: Login) throws(TrackerError) -> String? {
        guard let text = request.keyFingerprint else {
            if requireEncryption && request.port != 0 {
                throw .badRequest("this tracker requires encrypted peer links: start the peer with --encrypt")
            }
            return nil
        }
        guard text.utf8.count == 64, text.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) || (0x41...0x46).contains($0) }) else {
            throw .badRequest("keyFingerprint must be 64 hex digits (the SHA-256 of the peer's certificate)")
        }
        return text.lowercased()
    }

    /// The host handed out for a peer: the source address of its connection
    /// (`observed`), unless it advertises another. An advertised address must
    /// name one host (not `0.0.0.0`, `::`, multicast or broadcast), and may be
    /// a loopback address only for a peer that is itself on the tracker's
    /// machine: otherwise any account could send every downloader to
    /// services on the downloader's own machine.
    public static func servingHost(advertised: String?, observed: String) throws(TrackerError) -> String {
        guard let advertised else { return observed }
        let address: HostAddress
        do { address = try HostAddress(advertised) } catch { throw .badRequest("advertised host: \(error)") }
        guard !address.isUnspecified, !address.isMulticastOrBroadcast else {
            throw .badRequest("advertised host \(address) does not name one machine; advertise the address downloaders can reach you at")
        }
        if address.isLoopback, (try? HostAddress(observed))?.isLoopback != true {
            throw .badRequest("advertised host \(address) is a loopback address, but you connect from \(observed); advertise an address other machines can reach")
        }
        return address.value
    }

    /// The details asked for, each content with a download id bound to this
    /// account, the content and the holders listed (``DownloadGrants``).
    /// Served from ``DetailsCache`` when nothing the reply shows has changed
    /// since the same request was answered to an asker holding none of the
    /// contents; the download ids are issued afresh either way.
    private func details(_ request: Details, connection: UInt64) throws(TrackerError) -> Reply {
        let token = try session(request.token, connection)
        guard let asker = registry.peer(token)?.user else { throw .notLoggedIn }
        let key = DetailsCache.Key(name: request.name.flatMap { try? FileName($0) }, contentID: request.contentID, withManifest: request.withoutManifest != true,
                                   holdersAfter: request.holdersAfter)
        // A name that is no file name is refused below, never looked up.
        let cacheable = request.knownMaps == nil && (request.name == nil || key.name != nil)
        if cacheable, let payload = try served.details(key, asker: asker, extending: request.downloadID, now: now()) {
            return .encoded(.fileDetails, payload)
        }
        let view = try registry.details(token, name: request.name, contentID: request.contentID,
                                        withManifest: request.withoutManifest != true, holdersAfter: request.holdersAfter,
                                        knownMaps: request.knownMaps)
        // Encoded by the connection's task, off the actor: kept for the next
        // asker when it may be, and this reply is made from it either way.
        return .details(DetailsDraft(view: view, key: key, cacheable: cacheable,
                                     holderUsers: view.contents.reduce(into: Set<String>()) { $0.formUnion(registry.holderUsers(of: $1.contentID)) },
                                     asker: asker, extending: request.downloadID, generation: registry.generation, served: served))
    }

    /// A report is taken only with the evidence that the reporter was sent
    /// to that holder for that content: a download id from `details`, issued
    /// to the same account, for the same content, listing that holder. It
    /// may not be about the reporter itself, may not claim more bytes than
    /// the file has, and is taken once per (reporter, holder, content), ever
    /// (the store enforces that, across sessions and restarts). How much it
    /// moves the holder's counters is ``ReputationRule``'s call.
    private func report(_ request: Report, connection: UInt64) async throws -> Reported {
        let token = try session(request.token, connection)
        guard let reporter = registry.peer(token)?.user else { throw TrackerError.notLoggedIn }
        guard request.holder != reporter else {
            throw TrackerError.notAllowed("you cannot report about your own account (\(reporter.debugDescription)); reports are about other holders")
        }
        guard let id = request.downloadID else {
            throw TrackerError.notAllowed("a report must carry the downloadID of the fileDetails that listed \(request.holder.debugDescription); ask for the file's details, then report")
        }
        guard let grant = served.grant(id, now: now()), grant.account == reporter, grant.contentID == request.contentID else {
            throw TrackerError.notAllowed("the downloadID is not one this tracker gave you for content \(request.contentID.short) (or it expired; a downloadID is valid only on the tracker instance that gave it, and for a while); ask this tracker for the file's details again")
        }
        guard grant.holders.contains(request.holder) else {
            throw TrackerError.notAllowed("\(request.holder.debugDescription) was not listed to you as a holder of \(request.contentID.short) in that download; you may report only about holders you were sent to")
        }
        guard request.bytes <= grant.fileSize else {
            throw TrackerError.badRequest("a report of \(request.bytes) bytes from one holder is more than the file's \(grant.fileSize) bytes; report the verified bytes it sent")
        }
        let store = self.store
        let rule = reputation
        let succeeded = request.outcome == .success
        let record = ReportRecord(reporter: reporter, holder: request.holder, contentID: request.contentID.hex, succeeded: succeeded,
                                  bytes: request.bytes, at: now())
        let counters: AccountCounters?
        do {
            counters = try await store.recordReport(record, rule: rule)
        } catch {
            if case .notAllowed = error { logger.notice("report refused: \(reporter) about \(request.holder) for \(request.contentID.short): reported before") }
            throw error
        }
        guard let counters else {
            throw TrackerError.notFound("the account \(request.holder.debugDescription)")
        }
        metrics.reported(bytes: request.bytes, succeeded: succeeded)
        registry.setCounters(user: counters.user, downloads: counters.countDownloads, failures: counters.countFailures, bytesServed: counters.bytesServed)
        logger.info("report: \(reporter) says \(request.holder) \(succeeded ? "served" : "failed") \(request.contentID.short) (\(request.bytes) bytes); \(request.holder) now has \(counters.countDownloads) downloads, \(counters.countFailures) failures")
        return Reported(holder: counters.user, countDownloads: counters.countDownloads, countFailures: counters.countFailures)
    }

    /// A page of the file list: rows after `after`, at most ``TrackerRegistry/Limits/listPage``.
    /// The rows are kept sorted and current by each change (``ListCache``),
    /// and each page is encoded once until a row changes.
    private func fileList(after: ListCursor?, compact: Bool) throws(TrackerError) -> Reply {
        .encoded(.fileList, try served.listPage(after: after, compact: compact))
    }

    /// Every row of the file list, sorted.
    private func listRows() -> [ListedFile] {
        served.listRows
    }

    /// The operator's view: only with the operator token (constant-time compare).
    private func status(_ request: StatusRequest, host: String) async throws -> TrackerStatus {
        guard let expected = operatorToken, let given = request.token, OperatorToken.matches(given, expected) else {
            logger.notice("status refused: \(host) sent \(request.token == nil ? "no" : "a wrong") operator token")
            throw TrackerError.notAllowed("status is for the tracker's operator: send the operator token from the file the tracker wrote beside its database (`shoal tracker status` reads it; see --token-file)")
        }
        // A page of accounts and a page of files, or a later page of one of them.
        let store = self.store
        let peerPage = 256, filePage = 64
        let wantsPeers = request.filesAfter == nil, wantsFiles = request.peersAfter == nil
        let after = request.peersAfter
        let registered = try await store.accountCount()
        let accounts = wantsPeers ? try await store.counters(after: after, limit: peerPage + 1) : []
        var peers: [TrackerStatus.Peer] = []
        let connected = Dictionary(registry.connectedPeers.map { ($0.user, $0) }, uniquingKeysWith: { a, b in a.port > 0 ? a : b })
        for account in accounts.prefix(peerPage) {
            let peer = connected[account.user]
            peers.append(TrackerStatus.Peer(user: account.user, connected: peer != nil, host: peer?.host, port: peer?.port,
                                            countDownloads: account.countDownloads, countFailures: account.countFailures,
                                            bytesServed: account.bytesServed))
        }
        var files: [TrackerStatus.File] = []
        var nextFiles: ListCursor?
        if wantsFiles {
            let rows = listRows()
            let start = ListCache.firstRow(after: request.filesAfter, in: rows)
            let end = min(rows.count, start + filePage)
            files = registry.fileStatus(rows[start..<end])
            if end < rows.count, let last = files.last { nextFiles = ListCursor(name: last.name, contentID: last.contentID) }
        }
        return TrackerStatus(registered: registered, connected: registry.connectedCount, files: files, peers: peers,
                             nextFiles: nextFiles, nextPeers: accounts.count > peerPage ? peers.last?.user : nil)
    }

    /// The operator's view for the web page and its JSON API (``OperatorSnapshot``):
    /// a page of accounts from the store and what the registry holds now.
    /// Whoever calls it must have checked the operator token (as `status` does).
    /// The pages are built after the actor has handed out copies, so the
    /// availability bars are counted without holding up other requests.
    public nonisolated func operatorSnapshot(_ request: OperatorSnapshot.Request) async throws -> OperatorSnapshot {
        let (at, registered, accounts, sessions, rows) = try await operatorState(request)
        return OperatorSnapshot(request: request, at: at, registered: registered, accounts: accounts, sessions: sessions, rows: rows)
    }

    private func operatorState(_ request: OperatorSnapshot.Request) async throws
        -> (Double, Int, [AccountCounters], [TrackerRegistry.Peer], [ListedFile]) {
        let registered = try await store.accountCount()
        let accounts = try await store.counters(after: request.peersAfter, limit: request.peerPage + 1)
        return (now(), registered, accounts, Array(registry.sessions.values), listRows())
    }

    // MARK: - Helpers

    /// The session `token` names, if it is open on this very connection
    /// (never another instance's session: it has no connection here).
    private func session(_ token: String, _ connection: UInt64) throws(TrackerError) -> SessionToken {
        let token = SessionToken(value: token)
        guard let peer = registry.peer(token), !peer.isRemote, peer.connection == connection else { throw .notLoggedIn }
        return token
    }

    private static func checkPassword(_ password: String) throws(TrackerError) {
        guard !password.isEmpty else { throw .badRequest("the password is empty; choose one") }
        guard password.utf8.count <= 1024 else { throw .badRequest("the password is over 1024 bytes; choose a shorter one") }
    }

    /// Writes an announce's changes to the store. If the write fails, the
    /// session is closed (its connection too), so that the peer logs in and
    /// announces again, and the store and the registry agree once more.
    private func stored(_ result: TrackerRegistry.AnnounceResult, of token: SessionToken) async throws {
        // New contents, and the held ones: another instance may be deleting one of those right now.
        let contents = Set(result.newContents).union(result.changed.keys).compactMap { registry.storedContent($0) }
        do {
            let touched = Set(result.changed.keys).union(result.withdrawn)
            try await persist(token, touching: touched) { store in try await store.holdingsChanged(token, result, contents: contents) }
        } catch {
            if let peer = registry.logout(token) {
                logger.error("store: the announce of \(peer.user) could not be stored (\(error)); its session is closed so it announces again")
                closeConnection(peer.connection)
                enqueueWrite(token, touching: peer.holdings.keys) { store in try await store.sessionClosed(token) }
            }
            throw error
        }
    }

    /// Runs `write` after the previous store writes of `token`'s session and
    /// of the contents it touches have finished, so that the store sees
    /// changes in the order the registry made them: a logout never overtakes
    /// the announce before it, and a holding of a content never reaches the
    /// store before the announce that brought its manifest (or after the
    /// withdrawal that made it forgotten).
    ///
    /// The wait ends when the task waiting is cancelled (the tracker is
    /// stopping past its drain), even if the write goes on: a store that
    /// stopped answering must not keep a connection, and so the tracker,
    /// from stopping.
    private func persist(_ token: SessionToken, touching contents: some Sequence<ContentID>,
                         _ write: @escaping @Sendable (any TrackerStore) async throws -> Void) async throws {
        try await Self.outcome(of: enqueueWrite(token, touching: contents, write))
    }

    /// `task`'s outcome, or CancellationError as soon as the caller is cancelled.
    static func outcome(of task: Task<Void, any Error>) async throws {
        let waiting = ResumedOnce<Void, any Error>()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                waiting.keep(continuation)
                // Cancelled before the continuation was kept: the handler found nothing to resume.
                if Task.isCancelled { waiting.resume(with: .failure(CancellationError())) }
                Task { waiting.resume(with: await task.result) }
            }
        } onCancel: {
            waiting.resume(with: .failure(CancellationError()))
        }
    }

    /// Queues `write` as ``persist(_:touching:_:)`` does and returns at once.
    @discardableResult
    private func enqueueWrite(_ token: SessionToken, touching contents: some Sequence<ContentID>,
                              _ write: @escaping @Sendable (any TrackerStore) async throws -> Void) -> Task<Void, any Error> {
        let contents = Array(contents)
        var previous = writes[token].map { [$0.task] } ?? []
        for content in contents { if let last = contentWrites[content] { previous.append(last.task) } }
        let store = self.store
        nextWrite += 1
        let id = nextWrite
        let task = Task<Void, any Error> {
            for earlier in previous { _ = await earlier.result }
            // The task runs on this actor: the bookkeeping is done in step.
            defer { self.writeFinished(token, contents, id) }
            try await write(store)
        }
        writes[token] = (id, task)
        for content in contents { contentWrites[content] = (id, task) }
        return task
    }

    private func writeFinished(_ token: SessionToken, _ contents: [ContentID], _ id: UInt64) {
        if writes[token]?.id == id { writes.removeValue(forKey: token) }
        for content in contents where contentWrites[content]?.id == id { contentWrites.removeValue(forKey: content) }
    }

    /// Runs password hashing on the worker threads, at a lower priority
    /// than the threads serving requests (``BackgroundPriority``).
    private func runBlocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive {
            BackgroundPriority.lowerCurrentThread()
            return try work()
        }
    }
}
