import Foundation
import Logging
import NIOCore
import ShoalCore
import ShoalNet
import ShoalWire

/// A peer's session with the tracker: logged in, announcing what it shares,
/// asking for lists and details, reporting on holders.
///
/// If the tracker goes away the session keeps trying to come back (every
/// 0.5 s at first, then up to every 5 s): it logs in again and announces
/// everything it shares, from ``announcement``, by itself. Meanwhile requests
/// fail with a clear error, chunk announcements are kept to be sent later, and
/// reports wait in a queue, so a download that already has its holders goes on.
public actor TrackerSession {
    public let endpoint: Endpoint
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
        let session = TrackerSession(endpoint: endpoint, trust: trust, user: user, password: password, servePort: servePort, serveHost: serveHost,
                                     keyFingerprint: keyFingerprint, logger: logger)
        try await session.connect()
        return session
    }

    /// Registers an account (no session).
    public static func register(endpoint: Endpoint, trust: TrackerTrust, user: String, password: String) async throws {
        let connection = try await trust.connect(to: endpoint)
        defer { connection.close() }
        _ = try await connection.request(.register(Register(user: user, password: password)), timeout: .seconds(30))
    }

    private init(endpoint: Endpoint, trust: TrackerTrust, user: String, password: String, servePort: Int, serveHost: String?,
                 keyFingerprint: CertificateFingerprint?, logger: Logger) {
        self.endpoint = endpoint
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

    public func list() async throws -> [ListedFile] {
        guard case let .fileList(reply) = try await request(timeout: .seconds(30), { .list(ListFiles(token: $0)) }) else {
            throw NetError.unexpectedReply(expected: "fileList", received: "another message")
        }
        return reply.files
    }

    public func details(name: String) async throws -> [FileDetail] {
        guard case let .fileDetails(reply) = try await request(timeout: .seconds(30), { .details(Details(token: $0, name: name)) }) else {
            throw NetError.unexpectedReply(expected: "fileDetails", received: "another message")
        }
        return reply.files
    }

    /// The content's details; `withManifest` false leaves the manifest out
    /// (a downloader that has it, asking only for holders).
    public func details(contentID: ContentID, withManifest: Bool = true) async throws -> [FileDetail] {
        let without: Bool? = withManifest ? nil : true
        guard case let .fileDetails(reply) = try await request(timeout: .seconds(30), { .details(Details(token: $0, contentID: contentID, withoutManifest: without)) }) else {
            throw NetError.unexpectedReply(expected: "fileDetails", received: "another message")
        }
        return reply.files
    }

    /// Reports a holder's outcome; if the tracker is away, the report waits for it.
    /// Returns the holder's counters after the report, when the tracker answered.
    ///
    /// The tracker takes reports only about holders it has listed to this
    /// session. One that restarted since has listed nobody yet: a refusal of
    /// that kind is answered by asking it for the file's holders once, then
    /// reporting again.
    @discardableResult
    public func report(contentID: ContentID, holder: String, succeeded: Bool, bytes: UInt64) async -> Reported? {
        let report = Report(token: "", contentID: contentID, holder: holder, outcome: succeeded ? .success : .failure, bytes: bytes)
        for attempt in 1...2 {
            do {
                guard case let .reported(reply) = try await request(timeout: .seconds(30), { token in
                    var report = report
                    report.token = token
                    return .report(report)
                }) else { return nil }
                return reply
            } catch NetError.wire(.remote(let code, let message)) {
                if attempt == 1, code == ErrorCode.notAllowed.rawValue, (try? await details(contentID: contentID)) != nil { continue }
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
        let connection = try await trust.connect(to: endpoint, timeout: .seconds(10))
        do {
            let login = Login(user: user, password: password, port: servePort, host: serveHost, keyFingerprint: keyFingerprint?.hex)
            guard case let .loggedIn(reply) = try await connection.request(.login(login), timeout: .seconds(30)) else {
                throw NetError.unexpectedReply(expected: "loggedIn", received: "another message")
            }
            self.connection = connection
            self.token = reply.token
            self.counters = (reply.countDownloads, reply.countFailures)
        } catch {
            connection.close()
            throw error
        }
        // Watch the connection: when it closes without a logout, come back.
        Task { [weak self] in
            await connection.closed()
            await self?.connectionLost(connection)
        }
    }

    private func connectionLost(_ lost: FramedConnection) {
        guard !closed, connection === lost else { return }
        logger.warning("lost the tracker at \(endpoint); reconnecting")
        connection = nil
        token = nil
        startReconnecting()
    }

    private func startReconnecting() {
        guard reconnecting == nil, !closed else { return }
        reconnecting = Task { [weak self] in
            var delay = 0.5
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(delay))
                guard let self else { return }
                if await self.tryReconnect() { return }
                delay = min(delay * 2, 5)
            }
        }
    }

    private func tryReconnect() async -> Bool {
        guard !closed else { return true }
        do {
            try await connect()
            reconnecting = nil
            logger.notice("back with the tracker at \(endpoint); announcing again")
            try? await announceAll()
            let reports = pendingReports
            pendingReports = []
            for report in reports {
                await self.report(contentID: report.contentID, holder: report.holder, succeeded: report.outcome == .success, bytes: report.bytes)
            }
            return true
        } catch let error as NetError {
            // A tracker that now presents another key is not "away": say so, loudly.
            if case .fingerprintMismatch = error { logger.error("\(error)") } else { logger.debug("tracker still away: \(error)") }
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
