import Foundation
import Logging
import NIOCore
import NIOPosix
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalTracker
import ShoalWire

/// Which store a test tracker keeps its accounts in: what the tracker
/// tests run over, each test once per store (`@Test(arguments: TestStore.allCases)`).
public enum TestStore: String, Sendable, CaseIterable {
    /// A SQLite file in the tracker's folder (the default store).
    case sqlite
    /// A database of its own in the test process's ``PostgresCluster``,
    /// named after the tracker's folder, so that a tracker started again on
    /// the same folder finds the same database.
    case postgres

    /// The database a tracker on `directory` uses, made if needed.
    func postgresDatabase(for directory: TemporaryDirectory) async throws -> (PostgresCluster, String) {
        let cluster = try await PostgresCluster.shared()
        let name = "shoal_" + (directory.path as NSString).lastPathComponent.filter { $0.isLetter || $0.isNumber }.lowercased().suffix(24)
        try await cluster.database(named: name)
        return (cluster, name)
    }
}

/// A real tracker on a free loopback port with its own temporary database
/// (a SQLite file, or a PostgreSQL database: ``TestStore``), fast password
/// hashing and short timeouts, for tests. It speaks TLS with a certificate
/// made for it (``fingerprint``) unless started with `tls: false`.
/// Stop it with `stop()`.
public final class TestTracker: Sendable {
    public let server: TrackerServer
    public let log: CapturedLog
    public let directory: TemporaryDirectory
    public let store: TestStore
    /// The PostgreSQL database it uses, with ``TestStore/postgres``.
    public let postgres: (cluster: PostgresCluster, database: String)?
    private let task: Task<Void, Never>

    public var port: Int { server.port }
    public var databasePath: String { server.configuration.databasePath }

    /// The fingerprint of its certificate; nil when it serves in clear.
    public var fingerprint: CertificateFingerprint? { server.fingerprint }

    /// How peers of the tests trust it: pinned to its certificate, or in clear.
    public var trust: TrackerTrust { fingerprint.map { .pinned($0) } ?? .insecure }

    /// What a client of the tests connects with.
    public var security: ClientSecurity {
        guard let fingerprint else { return .plain }
        return .tls(TLSPin(expected: fingerprint, mismatchAdvice: "(test tracker)", plainAdvice: "(test tracker)"))
    }

    /// Starts a tracker; `configure` may change the configuration first.
    public static func start(
        directory: TemporaryDirectory? = nil,
        store: TestStore = .sqlite,
        tls: Bool = true,
        group: MultiThreadedEventLoopGroup = .singleton,
        _ configure: (inout TrackerConfiguration) -> Void = { _ in }
    ) async throws -> TestTracker {
        let directory = try directory ?? TemporaryDirectory("shoal-tracker")
        var configuration = TrackerConfiguration(host: "127.0.0.1", port: 0, databasePath: directory.file("tracker.sqlite"))
        var postgres: (PostgresCluster, String)?
        if store == .postgres {
            let (cluster, name) = try await store.postgresDatabase(for: directory)
            configuration.postgres = cluster.address(of: name)
            postgres = (cluster, name)
        }
        if tls { configuration.transport = .identity(try TLSIdentity.generate(commonName: "shoal test tracker")) }
        configuration.passwordRounds = 1_000
        // Tests share one process, and its threads can all be busy for
        // seconds while the whole suite starts: a client's hello may then
        // leave late. The tests of the deadline set their own.
        configuration.handshakeTimeout = 60
        configuration.probeInterval = 30
        // Tests register many accounts from 127.0.0.1; the throttle's own test sets it back.
        configuration.registrationThrottle = RegistrationThrottle(burst: 100_000, interval: 1)
        configure(&configuration)
        let log = CapturedLog()
        let server = try await TrackerServer.start(configuration: configuration, logger: log.logger(label: "shoal.tracker"), group: group)
        return TestTracker(server: server, log: log, directory: directory, store: store, postgres: postgres)
    }

    private init(server: TrackerServer, log: CapturedLog, directory: TemporaryDirectory, store: TestStore,
                 postgres: (cluster: PostgresCluster, database: String)?) {
        self.server = server
        self.log = log
        self.directory = directory
        self.store = store
        self.postgres = postgres
        self.task = Task { await server.run() }
    }

    /// Shuts the tracker down and waits until it has stopped (database closed).
    public func stop() async {
        server.shutdown()
        await task.value
    }

    /// Stops the tracker and removes its folder (and its PostgreSQL database).
    public func stopAndRemove() async {
        await stop()
        directory.remove()
        if let postgres { try? await postgres.cluster.drop(postgres.database) }
    }

    /// A new client connection to this tracker.
    public func connect(answersProbes: Bool = true) async throws -> FramedConnection {
        // Generous: a parallel test run on two cores can be slow to answer.
        try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(30), answersProbes: answersProbes,
                                           security: security)
    }
}

/// Shorthands for the requests tests make.
extension FramedConnection {
    /// As generous as ``TestTracker/connect(answersProbes:)``: while the
    /// whole suite runs on two cores, the tracker's tasks can wait seconds
    /// for a thread, and the password hash runs at nice 10.
    static let testRequestTimeout = TimeAmount.seconds(30)

    public func register(_ user: String, _ password: String = "pw-\(UUID().uuidString.prefix(6))") async throws {
        _ = try await request(.register(Register(user: user, password: password)), timeout: Self.testRequestTimeout)
    }

    /// Logs in and returns the session token.
    public func login(_ user: String, _ password: String, port: Int = 9000, advertising host: String? = nil) async throws -> String {
        guard case let .loggedIn(reply) = try await request(.login(Login(user: user, password: password, port: port, host: host)), timeout: Self.testRequestTimeout) else {
            throw NetError.unexpectedReply(expected: "loggedIn", received: "something else")
        }
        return reply.token
    }

    /// Registers and logs in.
    public func signUp(_ user: String, port: Int = 9000) async throws -> String {
        let password = "secret-of-\(user)"
        try await register(user, password)
        return try await login(user, password, port: port)
    }

    /// Announces complete files from manifests.
    @discardableResult
    public func announce(_ token: String, _ files: [(String, Manifest)], replace: Bool = true) async throws -> Int {
        let entries = files.map { AnnouncedFile(name: $0.0, contentID: $0.1.contentID, manifest: ManifestPayload($0.1)) }
        guard case let .announced(reply) = try await request(.announce(Announce(token: token, replace: replace, files: entries))) else {
            throw NetError.unexpectedReply(expected: "announced", received: "something else")
        }
        return reply.files
    }

    public func list(_ token: String) async throws -> [ListedFile] {
        guard case let .fileList(reply) = try await request(.list(ListFiles(token: token))) else {
            throw NetError.unexpectedReply(expected: "fileList", received: "something else")
        }
        return reply.files
    }

    public func details(_ token: String, name: String? = nil, contentID: ContentID? = nil) async throws -> [FileDetail] {
        guard case let .fileDetails(reply) = try await request(.details(Details(token: token, name: name, contentID: contentID))) else {
            throw NetError.unexpectedReply(expected: "fileDetails", received: "something else")
        }
        return reply.files
    }

    public func status() async throws -> TrackerStatus {
        guard case let .trackerStatus(reply) = try await request(.status(StatusRequest())) else {
            throw NetError.unexpectedReply(expected: "trackerStatus", received: "something else")
        }
        return reply
    }
}

/// The error code a refused request carried, or nil if it did not fail that way.
public func refusalCode(_ body: () async throws -> Void) async -> String? {
    do {
        try await body()
        return nil
    } catch let NetError.wire(.remote(code, _)) {
        return code
    } catch {
        return "unexpected: \(error)"
    }
}

/// The message of the `error` reply `body` gets, or nil if it succeeds.
public func refusalMessage(_ body: () async throws -> Void) async -> String? {
    do {
        try await body()
        return nil
    } catch let NetError.wire(.remote(_, message)) {
        return message
    } catch {
        return "unexpected: \(error)"
    }
}

/// A small manifest for tests, from bytes made of `seed`.
public func sampleManifest(_ seed: UInt8, size: Int = 40_000, chunkSize: UInt32 = 16 * 1024) -> Manifest {
    let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    return try! ManifestBuilder(parallelism: 1).build(fileSize: UInt64(size), chunkSize: chunkSize, reader: MemoryChunkReader(bytes))
}

/// A manifest of `chunks` 16 KiB chunks with made-up digests: for tests of
/// what the tracker keeps, where no file needs to exist.
public func sampleManifest(_ seed: UInt8, chunks: Int) -> Manifest {
    let digests = (0..<chunks).map { index -> ChunkDigest in
        var bytes = [UInt8](repeating: seed, count: ChunkDigest.byteCount)
        withUnsafeBytes(of: UInt64(index).littleEndian) { for (i, b) in $0.enumerated() { bytes[i] = b } }
        return ChunkDigest(bytes: bytes)!
    }
    return try! Manifest(fileSize: UInt64(chunks) * 16 * 1024, chunkSize: 16 * 1024, digests: digests)
}
