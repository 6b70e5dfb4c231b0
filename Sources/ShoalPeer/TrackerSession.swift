import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import ShoalCore
import ShoalNet
import ShoalWire

/// A peer's session with the tracker: logged in, announcing what it shares,
/// asking for lists and details, reporting on holders.
///
/// If the tracker goes away the session keeps trying to come back (every
/// 0.5 s at first, then up to every 5 s, ± 25 %; up to every minute while
/// trackers refuse the login): it logs in again and announces
/// everything it shares, from ``announcement``, by itself. Meanwhile requests
/// fail with a clear error, chunk announcements are kept to be sent later, and
/// reports wait in a queue, so a download that already has its holders goes on.
///
/// With several trackers (instances sharing one database, ``TrackerAddresses``),
/// a lost session comes back on the first that answers, trying the others
/// before the one that was lost.
///
/// Run as a `Service` (``run()``), the session's reconnect loop runs inside
/// the service's task, and a graceful shutdown logs out: the tracker stops
/// listing this peer at once, so downloaders stop picking it. Without a
/// service group, the loop runs in a task of its own until ``logout()``.
public actor TrackerSession: Service {
    /// The trackers this session may use; ``endpoint`` is the one in use.
    public private(set) var trackers: TrackerAddresses
    /// The tracker in use (or tried first at the next reconnection).
    public var endpoint: Endpoint { trackers.endpoint }
    public let user: String
    private let password: String
    /// The port this peer serves chunks on, as downloaders reach it (0: does not serve).
    public let servePort: Int
    /// The address downloaders reach this peer at, when not the one the
    /// tracker sees its connection come from (`--advertise`).
    public let serveHost: String?
    /// How the tracker's certificate is trusted (or `insecure`).
    public let trust: TrackerTrust
    /// The fingerprint of this peer's certificate for encrypted links, announced at login; nil: it serves in clear.
    public let keyFingerprint: CertificateFingerprint?
    private let logger: Logger
    private var connection: FramedConnection?
    private var token: String?
    private var reconnecting: Task<Void, Never>?
    /// While ``run()`` keeps the session: where a lost connection is signalled to it.
    private var keeper: AsyncStream<Void>.Continuation?
    private var pendingReports: [Report] = []
    private var pendingHave: [ContentID: (name: String, indices: [Int])] = [:]
    private var closed = false
    /// What to announce after (re)connecting: every file shared, complete or partial.
    private var announcement: @Sendable () async -> [AnnouncedFile] = { [] }
    /// Requests sent on the session so far (login included), for diagnostics.
    public private(set) var requestsSent = 0
    /// The account's counters at the last login.
    public private(set) var counters: (downloads: Int, failures: Int) = (0, 0)

    /// Logs in to the tracker at `endpoint`; throws with a clear message if it cannot.
    public static func login(endpoint: Endpoint, trust: TrackerTrust, user: String, password: String, servePort: Int, serveHost: String? = nil,
                             keyFingerprint: CertificateFingerprint? = nil, logger: Logger) async throws -> TrackerSession {
        try await login(trackers: TrackerAddresses(endpoint), trust: trust, user: user, password: password, servePort: servePort,
                        serveHost: serveHost, keyFingerprint: keyFingerprint, logger: logger)
    }

    /// Logs in to the first of `trackers` that answers; throws with a clear message if none does.
    public static func login(trackers: TrackerAddresses, trust: TrackerTrust, user: String, password: String, servePort: Int,
                             serveHost: String? = nil, keyFingerprint: CertificateFingerprint? = nil, logger: Logger) async throws -> TrackerSession {
        let session = TrackerSession(trackers: trackers, trust: trust, user: user, password: password, servePort: servePort, serveHost: serveHost,
                                     keyFingerprint: keyFingerprint, logger: logger)
        try await session.connect()
        return session
    }

    /// Registers an account (no session).
    public static func register(endpoint: Endpoint, trust: TrackerTrust, user: String, password: String) async throws {
        try await register(trackers: TrackerAddresses(endpoint), trust: trust, user: user, password: password)
    }

    /// Registers an account on the first of `trackers` that answers (no
    /// session); returns the tracker that took it.
    @discardableResult
    public static func register(trackers: TrackerAddresses, trust: TrackerTrust, user: String, password: String) async throws -> Endpoint {
        let (_, endpoint) = try await firstAnswering(trackers, trust: trust, logger: nil) { connection in
            defer { connection.close() }
            return try await connection.request(.register(Register(user: user, password: password)), timeout: .seconds(30))
        }
        return endpoint
    }

    /// Runs `exchange` with the first of `trackers` (in ``TrackerAddresses/attemptOrder``)
    /// that can be reached and answers; returns its result and the tracker
    /// that gave it. A refusal (wrong password, a taken name) is the same
    /// from every instance of one tracker and is thrown at once; an
    /// unreachable, mistrusted or failing tracker makes it try the next.
    /// With nothing answering, the error of the first tracker is thrown,
    /// naming the others tried.
    static func firstAnswering<T: Sendable>(_ trackers: TrackerAddresses, trust: TrackerTrust, logger: Logger?,
                                            _ exchange: (FramedConnection) async throws -> T) async throws -> (T, Endpoint) {
        var firstError: (any Error)?
        let order = trackers.attemptOrder
        // With others to try, a tracker that does not answer a connection is given less time.
        let timeout: TimeAmount = order.count > 1 ? .seconds(4) : .seconds(10)
        for endpoint in order {
            do {
                let connection = try await trust.connect(to: endpoint, timeout: timeout)
                logger?.trace("connected to the tracker at \(endpoint)")
                do {
                    let result = try await exchange(connection)
                    return (result, endpoint)
                } catch {
                    connection.close()
                    throw error
                }
            } catch NetError.wire(.remote(let code, let message)) where !Self.triesAnother(code) {
                throw NetError.wire(.remote(code: code, message: message))
            } catch {
                if let logger, order.count > 1 {
                    // A changed key is news to the user; an unreachable instance is routine.
                    if case NetError.fingerprintMismatch = error { logger.error("\(error)") } else { logger.info("tracker \(endpoint) did not answer: \(error)") }
                }
                if firstError == nil { firstError = error }
            }
        }
        if order.count > 1, let first = firstError as? NetError, case let .connectFailed(host, port, reason) = first {
            throw NetError.connectFailed(host: host, port: port, reason: "\(reason); the other trackers (\(order.dropFirst().map(\.description).joined(separator: ", "))) did not answer either")
        }
        throw firstError ?? NetError.connectFailed(host: trackers.endpoint.host, port: trackers.endpoint.port, reason: "no tracker given")
    }

    /// Whether a refusal with this code may come out otherwise from another
    /// instance (an overloaded or failing one), rather than from the shared accounts.
    private static func triesAnother(_ code: String) -> Bool {
        code == ErrorCode.busy.rawValue || code == ErrorCode.internal.rawValue
    }

    private init(trackers: TrackerAddresses, trust: TrackerTrust, user: String, password: String, servePort: Int, serveHost: String?,
                 keyFingerprint: CertificateFingerprint?, logger: Logger) {
        self.trackers = trackers
        self.trust = trust
        self.keyFingerprint = keyFingerprint
        self.user = user
        self.password = password
        self.servePort = servePort
        self.serveHost = serveHost
        self.logger = logger
    }

    /// Sets what to announce after every (re)connection, and announces it now.
    public func setAnnouncement(_ provider: @escaping @Sendable () async -> [AnnouncedFile]) async throws {
        announcement = provider
        try await announceAll()
    }

    /// Announces everything shared, replacing what the tracker knew.
    public func announceAll() async throws {
        let files = await announcement()
        _ = try await request(timeout: .seconds(60)) { .announce(Announce(token: $0, replace: true, files: files)) }
    }

    /// Announces newly verified chunks of a download (batched by the caller; kept for later if the tracker is away).
    public func announceHave(name: String, contentID: ContentID, indices: [Int]) async {
        pendingHave[contentID, default: (name, [])].indices += indices
        await flushHave()
    }

    /// Announces an incremental change (a finished download, a withdrawn file).
    public func announce(_ files: [AnnouncedFile]) async throws {
        _ = try await request(timeout: .seconds(60)) { .announce(Announce(token: $0, replace: false, files: files)) }
    }

    /// Every file available, asked for page by page (at most `maximumRows`).
    public func list(maximumRows: Int = 1_000_000) async throws -> [ListedFile] {
        var rows: [ListedFile] = []
        var after: ListCursor?
        repeat {
            let cursor = after
            guard case let .fileList(reply) = try await request(timeout: .seconds(30), { .list(ListFiles(token: $0, after: cursor, compact: true)) }) else {
                throw NetError.unexpectedReply(expected: "fileList", received: "another message")
            }
            rows += reply.files
            // A cursor that does not move on would loop forever.
            guard reply.next != cursor, !reply.files.isEmpty else { break }
            after = reply.next
        } while after != nil && rows.count < maximumRows
        return rows
    }

    /// The contents shared as `name`. When there is just one, it comes whole:
    /// every page of its holders and its manifest. When there are several,
    /// each comes as a summary (first page of holders, no manifest): ask
    /// again by content id for the one chosen.
    public func details(name: String) async throws -> FileDetails {
        guard case let .fileDetails(reply) = try await request(timeout: .seconds(30), { .details(Details(token: $0, name: name)) }) else {
            throw NetError.unexpectedReply(expected: "fileDetails", received: "another message")
        }
        guard reply.files.count == 1, reply.moreContents == nil else { return reply }
        return FileDetails(files: [try await complete(reply.files[0], withManifest: true)])
    }

    /// The content's details, whole (every page of holders); `withManifest`
    /// false leaves the manifest out (a downloader that has it, asking only
    /// for holders). With the `downloadID` of an earlier reply, the holders
    /// listed now join that download's, and the reply carries the same id.
    /// `knownMaps`: the chunk-map versions the caller has of some holders;
    /// those come with `gained` (the chunks gained since) instead of a map.
    public func details(contentID: ContentID, withManifest: Bool = true, downloadID: String? = nil,
                        knownMaps: [String: UInt64]? = nil) async throws -> [FileDetail] {
        let without: Bool? = withManifest ? nil : true
        let known = knownMaps?.isEmpty == false ? knownMaps : nil
        guard case let .fileDetails(reply) = try await request(timeout: .seconds(30), {
            .details(Details(token: $0, contentID: contentID, withoutManifest: without, downloadID: downloadID, knownMaps: known))
        }) else {
            throw NetError.unexpectedReply(expected: "fileDetails", received: "another message")
        }
        guard let first = reply.files.first else { return [] }
        return [try await complete(first, withManifest: withManifest, knownMaps: known)]
    }

    /// Holders at most, over all pages of one content's details: what a
    /// lying tracker could otherwise make a downloader keep.
    public static let maximumHolders = 4096

    /// `detail` with the rest of its holders, and its manifest if asked and not inline.
    private func complete(_ detail: FileDetail, withManifest: Bool, knownMaps: [String: UInt64]? = nil) async throws -> FileDetail {
        var detail = detail
        var more = detail.moreHolders
        while let remaining = more, remaining > 0, let last = detail.holders.last?.user, detail.holders.count < Self.maximumHolders {
            let id = detail.contentID
            let downloadID = detail.downloadID
            guard case let .fileDetails(reply) = try await request(timeout: .seconds(30), { token in
                .details(Details(token: token, contentID: id, withoutManifest: true, holdersAfter: last, downloadID: downloadID, knownMaps: knownMaps))
            }), let page = reply.files.first, page.contentID == id else {
                throw NetError.unexpectedReply(expected: "fileDetails", received: "another message")
            }
            // Pages must move forward by user name, or a lying tracker loops us.
            let fresh = page.holders.filter { last.utf8.lexicographicallyPrecedes($0.user.utf8) }
            guard !fresh.isEmpty else { break }
            detail.holders += fresh
            detail.downloadID = page.downloadID ?? detail.downloadID
            more = page.moreHolders
        }
        detail.moreHolders = nil
        if withManifest, detail.manifest == nil, let chunkCount = detail.chunkCount {
            detail.manifest = try await manifest(contentID: detail.contentID, chunkCount: chunkCount)
        }
        return detail
    }

    /// A manifest asked for in parts, several at a time; the caller checks it hashes to its content id.
    public func manifest(contentID: ContentID, chunkCount: Int) async throws -> ManifestPayload {
        guard chunkCount > 0, chunkCount <= Int(ChunkSizing.maximumChunkCount) else {
            throw NetError.unexpectedReply(expected: "a manifest of 1 ... \(ChunkSizing.maximumChunkCount) chunks", received: "\(chunkCount) chunks")
        }
        let starts = Array(stride(from: 0, to: chunkCount, by: ManifestPart.maximumDigests))
        var parts: [Int: ManifestPart] = [:]
        for batch in stride(from: 0, to: starts.count, by: 8) {
            try await withThrowingTaskGroup(of: ManifestPart.self) { group in
                for from in starts[batch..<min(starts.count, batch + 8)] {
                    group.addTask {
                        guard case let .manifestPart(part) = try await self.request(timeout: .seconds(30), { .manifest(ManifestRequest(token: $0, contentID: contentID, from: from)) }),
                              part.contentID == contentID, part.from == from else {
                            throw NetError.unexpectedReply(expected: "manifestPart from \(from)", received: "another message")
                        }
                        return part
                    }
                }
                for try await part in group { parts[part.from] = part }
            }
        }
        var digests = Data()
        for from in starts {
            guard let part = parts[from], let bytes = Data(base64Encoded: part.digests),
                  bytes.count == min(ManifestPart.maximumDigests, chunkCount - from) * 32 else {
                throw NetError.unexpectedReply(expected: "manifestPart from \(from) with its digests", received: "a malformed part")
            }
            digests += bytes
        }
        let first = parts[0]!
        return ManifestPayload(fileSize: first.fileSize, chunkSize: first.chunkSize, digests: digests.base64EncodedString())
    }

    /// Reports a holder's outcome; if the tracker is away, the report waits for it.
    /// Returns the holder's counters after the report, when the tracker answered.
    ///
    /// The tracker takes a report only with the `downloadID` of the details
    /// that listed the holder to this account. One that restarted since
    /// knows no such id: a refusal of that kind is answered by asking it for
    /// the file's holders once, then reporting again with the new id.
    @discardableResult
    public func report(contentID: ContentID, holder: String, succeeded: Bool, bytes: UInt64, downloadID: String?) async -> Reported? {
        var report = Report(token: "", contentID: contentID, holder: holder, outcome: succeeded ? .success : .failure, bytes: bytes,
                            downloadID: downloadID)
        for attempt in 1...2 {
            do {
                guard case let .reported(reply) = try await request(timeout: .seconds(30), { token in
                    var report = report
                    report.token = token
                    return .report(report)
                }) else { return nil }
                return reply
            } catch NetError.wire(.remote(let code, let message)) {
                if attempt == 1, code == ErrorCode.notAllowed.rawValue, !message.contains("reported about"),
                   let fresh = try? await details(contentID: contentID, withManifest: false, downloadID: report.downloadID).first?.downloadID {
                    report.downloadID = fresh
                    continue
                }
                logger.notice("the tracker refused a report about \(holder) (\(code)): \(message)")
                return nil
            } catch {
                pendingReports.append(report)
                return nil
            }
        }
        return nil
    }

    /// Logs out and closes the connection; no reconnection after this.
    public func logout() async {
        closed = true
        reconnecting?.cancel()
        if let connection, let token {
            _ = try? await connection.request(.logout(Logout(token: token)), timeout: .seconds(5))
        }
        connection?.close()
        connection = nil
        token = nil
    }

    /// Whether the session is connected right now.
    public var isConnected: Bool { connection?.isOpen == true && token != nil }

    // MARK: - Connection

    private func connect() async throws {
        let login = Login(user: user, password: password, port: servePort, host: serveHost, keyFingerprint: keyFingerprint?.hex)
        let ((connection, reply), endpoint) = try await Self.firstAnswering(trackers, trust: trust, logger: logger) { connection in
            guard case let .loggedIn(reply) = try await connection.request(.login(login), timeout: .seconds(30)) else {
                throw NetError.unexpectedReply(expected: "loggedIn", received: "another message")
            }
            return (connection, reply)
        }
        if endpoint != trackers.endpoint { logger.notice("now with the tracker at \(endpoint) (was \(trackers.endpoint))") }
        trackers.use(endpoint)
        logger.trace("logged in as \(user)")
        self.connection = connection
        self.token = reply.token
        self.counters = (reply.countDownloads, reply.countFailures)
        // Watch the connection: when it closes without a logout, come back.
        Task { [weak self] in
            await connection.closed()
            await self?.connectionLost(connection)
        }
    }

    private func connectionLost(_ lost: FramedConnection) {
        guard !closed, connection === lost else { return }
        logger.warning("lost the tracker at \(endpoint); reconnecting\(trackers.endpoints.count > 1 ? ", to the others first" : "")")
        trackers.moveOn()
        connection = nil
        token = nil
        startReconnecting()
    }

    private func startReconnecting() {
        guard !closed else { return }
        if let keeper {
            keeper.yield()
            return
        }
        guard reconnecting == nil else { return }
        reconnecting = Task { [weak self] in
            var delay = 0.5
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(Self.jittered(delay)))
                guard let self else { return }
                if await self.tryReconnect() { return }
                delay = min(delay * 2, await self.retryCap)
            }
        }
    }

    /// Keeps the session until the service group stops: reconnects (every
    /// 0.5 s at first, then up to every 5 s) whenever the tracker goes away;
    /// on graceful shutdown or cancellation, logs out and returns.
    public func run() async {
        let (lost, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        keeper = signal
        // A loop started before the service ran hands over to it.
        reconnecting?.cancel()
        reconnecting = nil
        if !closed && !isConnected { signal.yield() }
        // A graceful shutdown cancels the loop, and so ends a wait between attempts.
        await cancelWhenGracefulShutdown {
            for await _ in lost {
                await self.reconnectUntilBack()
            }
        }
        signal.finish()
        keeper = nil
        if !closed {
            logger.notice("leaving: logging out of the tracker at \(endpoint)")
            await logout()
        }
    }

    /// The service's reconnect loop: returns once back, or when the session
    /// is closed or the service stops.
    private func reconnectUntilBack() async {
        var delay = 0.5
        while !closed, !isConnected, !Task.isCancelled {
            try? await Task.sleep(for: .seconds(Self.jittered(delay)))
            guard !Task.isCancelled else { return }
            if await tryReconnect() { return }
            delay = min(delay * 2, retryCap)
        }
    }

    /// Whether the last attempt to come back was refused (by the tracker:
    /// a wrong password, an overloaded or failing instance; or by a changed
    /// key), not merely unanswered: then attempts slow down to one a minute.
    private var lastAttemptRefused = false

    /// The longest wait between attempts to come back: 5 s while trackers
    /// are away, 60 s while they refuse (each refused login costs them a
    /// password hash).
    private var retryCap: Double { lastAttemptRefused ? 60 : 5 }

    /// `delay` ± 25 %, so that the peers of one lost tracker do not all come
    /// back to the next one at the same instant.
    static func jittered(_ delay: Double) -> Double { delay * Double.random(in: 0.75...1.25) }

    private func tryReconnect() async -> Bool {
        guard !closed else { return true }
        do {
            try await connect()
            reconnecting = nil
            lastAttemptRefused = false
            logger.notice("back with the tracker at \(endpoint); announcing again")
            try? await announceAll()
            let reports = pendingReports
            pendingReports = []
            for report in reports {
                await self.report(contentID: report.contentID, holder: report.holder, succeeded: report.outcome == .success, bytes: report.bytes,
                                  downloadID: report.downloadID)
            }
            return true
        } catch let error as NetError {
            // A tracker that now presents another key, or refuses, is not "away": say so, loudly.
            switch error {
            case .fingerprintMismatch, .wire(.remote):
                lastAttemptRefused = true
                logger.error("\(error)")
            default:
                lastAttemptRefused = false
                logger.debug("tracker still away: \(error)")
            }
            return false
        } catch {
            logger.debug("tracker still away: \(error)")
            return false
        }
    }

    private func flushHave() async {
        guard isConnected, !pendingHave.isEmpty else { return }
        let batch = pendingHave
        pendingHave = [:]
        let files = batch.map { AnnouncedFile(name: $0.value.name, contentID: $0.key, have: $0.value.indices) }
        do {
            try await announce(files)
        } catch {
            // After a reconnection the full announce carries the chunk maps anyway.
            logger.debug("chunk announcement deferred: \(error)")
        }
    }

    /// Sends the request `make` builds with the session token.
    private func request(timeout: TimeAmount, _ make: (String) -> Message) async throws -> Message {
        guard let connection, let token, connection.isOpen else {
            startReconnecting()
            throw NetError.connectFailed(host: endpoint.host, port: endpoint.port, reason: "the tracker is unreachable; reconnecting in the background")
        }
        requestsSent += 1
        do {
            return try await connection.request(make(token), timeout: timeout)
        } catch let error as NetError {
            if case .wire(.remote) = error { throw error }
            connectionLost(connection)
            throw error
        }
    }
}
