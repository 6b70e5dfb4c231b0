import Foundation
import Logging
import NIOCore
import NIOPosix
import ShoalCore
import ShoalNet
import ShoalWire

/// The tracker's brain: accounts (through an ``AccountStore``), sessions and
/// holdings (a ``TrackerRegistry``) and the login throttle, behind one actor.
/// ``TrackerServer`` feeds it one request at a time per connection.
///
/// Slow work (password hashing, database writes) runs on a thread pool, so
/// the actor keeps serving other connections meanwhile; the state it reads
/// after such a wait is read again, never assumed.
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
        case refused(TrackerError)
    }

    /// A request's outcome: the reply to send, and the session change.
    public struct Outcome: Sendable {
        public var reply: Reply
        public var session: SessionChange
    }

    private let store: any AccountStore
    private let hasher: PasswordHasher
    private let pool: NIOThreadPool
    private let logger: Logger
    private let now: @Sendable () -> Double
    private var registry: TrackerRegistry
    private var throttle = LoginThrottle()
    /// Called to close a connection whose session was taken over by a new login.
    private let closeConnection: @Sendable (UInt64) -> Void
    private var nextConnection: UInt64 = 0
    /// The encoded `fileList` payload and the registry generation it was made at:
    /// every client asking between two changes gets the same bytes.
    private var listCache: (generation: UInt64, payload: ByteBuffer)?
    /// A hash to verify against when the user does not exist, so a wrong name
    /// takes as long as a wrong password (no user enumeration by timing).
    private let decoyHash: String
    /// Whether serving peers must announce a key fingerprint (`--require-encryption`).
    private let requireEncryption: Bool

    public init(
        store: any AccountStore, configuration: TrackerConfiguration, logger: Logger,
        now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
        closeConnection: @escaping @Sendable (UInt64) -> Void = { _ in }
    ) {
        self.store = store
        self.hasher = PasswordHasher(rounds: configuration.passwordRounds)
        self.registry = TrackerRegistry(limits: configuration.limits)
        self.requireEncryption = configuration.requireEncryption
        self.logger = logger
        self.now = now
        self.closeConnection = closeConnection
        self.decoyHash = PasswordHasher(rounds: configuration.passwordRounds).hash(UUID().uuidString)
        self.pool = NIOThreadPool(numberOfThreads: max(2, System.coreCount))
        pool.start()
    }

    /// Stops the worker threads (after the server has stopped).
    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    /// A fresh id for a new connection.
    public func newConnectionID() -> UInt64 {
        nextConnection += 1
        return nextConnection
    }

    /// Connected peers right now.
    public var connectedCount: Int { registry.connectedCount }

    /// Handles one request from `connection` (whose peer is at `host`).
    public func handle(_ message: Message, connection: UInt64, host: String) async -> Outcome {
        do {
            switch message {
            case let .register(request):
                return Outcome(reply: .message(.registered(try await register(request))), session: .none)
            case let .login(request):
                let keyFingerprint = try checkKeyFingerprint(request)
                let (reply, token) = try await login(request, connection: connection, host: host)
                registry.setKeyFingerprint(token, keyFingerprint)
                return Outcome(reply: .message(.loggedIn(reply)), session: .loggedIn(token))
            case let .logout(request):
                let token = try session(request.token, connection)
                if let peer = registry.logout(token) { logger.info("logout: \(peer.user) (\(registry.connectedCount) connected)") }
                return Outcome(reply: .message(.loggedOut(LoggedOut())), session: .loggedOut)
            case let .announce(request):
                let token = try session(request.token, connection)
                let count = try registry.announce(token, request)
                let user = registry.peer(token)?.user ?? "?"
                let partial = registry.peer(token)?.holdings.values.filter { !$0.isComplete }.count ?? 0
                logger.info("announce: \(user) shares \(count) file\(count == 1 ? "" : "s") (\(partial) partial) after \(request.replace ? "a full" : "an incremental") announce of \(request.files.count)")
                return Outcome(reply: .message(.announced(Announced(files: count))), session: .none)
            case let .list(request):
                _ = try session(request.token, connection)
                return Outcome(reply: try fileList(), session: .none)
            case let .details(request):
                let token = try session(request.token, connection)
                let files = try registry.details(token, name: request.name, contentID: request.contentID,
                                                 withManifest: request.withoutManifest != true)
                return Outcome(reply: .message(.fileDetails(FileDetails(files: files))), session: .none)
            case let .report(request):
                return Outcome(reply: .message(.reported(try await report(request, connection: connection))), session: .none)
            case .status:
                return Outcome(reply: .message(.trackerStatus(try await status())), session: .none)
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
        logger.info("disconnect: \(peer.user) \(reason); its \(peer.holdings.count) file\(peer.holdings.count == 1 ? "" : "s") withdrawn (\(registry.connectedCount) connected)")
    }

    // MARK: - Requests

    private func register(_ request: Register) async throws -> Registered {
        let name: UserName
        do { name = try UserName(request.user) } catch { throw TrackerError.invalidName(error) }
        try Self.checkPassword(request.password)
        let hasher = self.hasher
        let store = self.store
        let password = request.password
        try await runBlocking {
            try store.create(Account(user: name.value, passwordHash: hasher.hash(password)))
        }
        let accounts = (try? await runBlocking { try store.count() }) ?? 0
        logger.info("register: \(name.value) (\(accounts) account\(accounts == 1 ? "" : "s"))")
        return Registered(user: name.value)
    }

    private func login(_ request: Login, connection: UInt64, host: String) async throws -> (LoggedIn, SessionToken) {
        let name: UserName
        do { name = try UserName(request.user) } catch { throw TrackerError.invalidName(error) }
        try Self.checkPassword(request.password)
        guard (0...65_535).contains(request.port) else {
            throw TrackerError.badRequest("port \(request.port) is not a TCP port (0 ... 65535)")
        }
        let served = try Self.servingHost(advertised: request.host, observed: host)
        let wait = throttle.wait(user: name.value, now: now())
        guard wait == 0 else {
            logger.notice("login refused: \(name.value) is throttled for \(wait) s after repeated failures")
            throw TrackerError.tooManyAttempts(user: name.value, retryAfterSeconds: wait)
        }
        let store = self.store
        let hasher = self.hasher
        let decoy = decoyHash
        let password = request.password
        let account: Account? = try await runBlocking {
            let account = try store.account(named: name.value)
            return hasher.verify(password, against: account?.passwordHash ?? decoy) ? account : nil
        }
        guard let account else {
            throttle.failed(user: name.value, now: now())
            logger.notice("login failed: \(name.value) from \(host)")
            throw TrackerError.badCredentials
        }
        throttle.succeeded(user: name.value)
        let token = SessionToken.random()
        let peer = TrackerRegistry.Peer(
            user: account.user, host: served, port: request.port, connection: connection,
            countDownloads: account.countDownloads, countFailures: account.countFailures, bytesServed: account.bytesServed)
        if let (_, replaced) = registry.login(token: token, peer: peer) {
            logger.info("login: \(account.user) logged in again; the previous session (\(replaced.host):\(replaced.port)) is closed")
            if replaced.connection != connection { closeConnection(replaced.connection) }
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

    private func report(_ request: Report, connection: UInt64) async throws -> Reported {
        let token = try session(request.token, connection)
        try registry.authorizeReport(token, contentID: request.contentID, holder: request.holder)
        let reporter = registry.peer(token)?.user ?? "?"
        let store = self.store
        let succeeded = request.outcome == .success
        guard let account = try await runBlocking({ try store.recordTransfer(holder: request.holder, succeeded: succeeded, bytes: request.bytes) }) else {
            throw TrackerError.notFound("the account \(request.holder.debugDescription)")
        }
        registry.setCounters(user: account.user, downloads: account.countDownloads, failures: account.countFailures, bytesServed: account.bytesServed)
        logger.info("report: \(reporter) says \(request.holder) \(succeeded ? "served" : "failed") \(request.contentID.short) (\(request.bytes) bytes); \(request.holder) now has \(account.countDownloads) downloads, \(account.countFailures) failures")
        return Reported(holder: account.user, countDownloads: account.countDownloads, countFailures: account.countFailures)
    }

    private func fileList() throws(TrackerError) -> Reply {
        if let cache = listCache, cache.generation == registry.generation {
            return .encoded(.fileList, cache.payload)
        }
        let frame: Frame
        do {
            frame = try FileList(files: registry.list()).frame(requestID: 0)
        } catch {
            throw .tooLarge("the file list does not fit in one frame (\(error)); ask for details by name instead")
        }
        listCache = (registry.generation, frame.payload)
        return .encoded(.fileList, frame.payload)
    }

    private func status() async throws -> TrackerStatus {
        let store = self.store
        let accounts = try await runBlocking { try store.all() }
        let connected = Dictionary(registry.connectedPeers.map { ($0.user, $0) }, uniquingKeysWith: { a, _ in a })
        let peers = accounts.prefix(10_000).map { account in
            let peer = connected[account.user]
            return TrackerStatus.Peer(user: account.user, connected: peer != nil, host: peer?.host, port: peer?.port,
                                      countDownloads: account.countDownloads, countFailures: account.countFailures,
                                      bytesServed: account.bytesServed)
        }
        return TrackerStatus(registered: accounts.count, connected: registry.connectedCount, files: registry.fileStatus(), peers: Array(peers))
    }

    // MARK: - Helpers

    /// The session `token` names, if it is open on this very connection.
    private func session(_ token: String, _ connection: UInt64) throws(TrackerError) -> SessionToken {
        let token = SessionToken(value: token)
        guard registry.peer(token)?.connection == connection else { throw .notLoggedIn }
        return token
    }

    private static func checkPassword(_ password: String) throws(TrackerError) {
        guard !password.isEmpty else { throw .badRequest("the password is empty; choose one") }
        guard password.utf8.count <= 1024 else { throw .badRequest("the password is over 1024 bytes; choose a shorter one") }
    }

    private func runBlocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(work)
    }
}
