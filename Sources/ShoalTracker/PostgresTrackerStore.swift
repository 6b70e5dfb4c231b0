import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import ShoalCore

/// The shared store: accounts, reports and the live registry in PostgreSQL,
/// through postgres-nio's pooled ``PostgresClient``, so that several tracker
/// processes can keep one swarm in one database.
///
/// Schema (migration 1, made at start under an advisory lock, so trackers
/// starting together do not race):
/// ```sql
/// account (user_name TEXT PRIMARY KEY, password_hash TEXT, count_downloads BIGINT,
///          count_failures BIGINT, bytes_served BIGINT, created_at DOUBLE PRECISION)  -- counters ≥ 0
/// report  (reporter, holder, content, outcome, bytes, standing, reported_at,
///          PRIMARY KEY (reporter, holder, content))                                -- one per triple, ever
/// content (content_id TEXT PRIMARY KEY, file_size, chunk_size, digests BYTEA,
///          first_shared_by, since)                                                 -- manifests held by someone
/// session (token TEXT PRIMARY KEY, instance TEXT, user_name, host, port,
///          key_fingerprint, lease_expiry DOUBLE PRECISION)                         -- who is connected, where
/// holding (token → session ON DELETE CASCADE, content_id → content, names TEXT[],
///          chunks BYTEA NULL (NULL: every chunk), version BIGINT, PRIMARY KEY (token, content_id))
/// ```
///
/// What must hold under concurrent requests holds in the database: a name is
/// unique by its primary key (the loser's insert fails with unique_violation,
/// 23505); a report is inserted with `ON CONFLICT DO NOTHING` and the
/// counters moved in the same transaction, which first locks the holder's
/// account row, so reports about one holder are applied one at a time
/// whichever tracker takes them; counters saturate inside the `UPDATE`.
public final class PostgresTrackerStore: TrackerStore {
    public let address: PostgresAddress
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger
    private let timing: StoreTiming?

    /// The largest value a counter column holds.
    static let maximum = Int64.max

    private init(address: PostgresAddress, client: PostgresClient, runner: Task<Void, Never>, logger: Logger, timing: StoreTiming?) {
        self.address = address
        self.client = client
        self.runner = runner
        self.logger = logger
        self.timing = timing
    }

    /// Connects to the database at `address` and creates or migrates its schema.
    public static func open(_ address: PostgresAddress, logger: Logger, timing: StoreTiming? = nil,
                            maximumConnections: Int = 16) async throws(TrackerError) -> PostgresTrackerStore {
        var configuration: PostgresClient.Configuration
        var single: PostgresConnection.Configuration
        switch address.endpoint {
        case let .tcp(host, port):
            let tls: PostgresConnection.Configuration.TLS
            switch address.tls {
            case .disable: tls = .disable
            case .prefer, .require:
                let context: NIOSSLContext
                do { context = try NIOSSLContext(configuration: .makeClientConfiguration()) } catch {
                    throw .storage("cannot set up TLS to PostgreSQL: \(error)")
                }
                tls = address.tls == .require ? .require(context) : .prefer(context)
            }
            single = .init(host: host, port: port, username: address.user, password: address.password, database: address.database, tls: tls)
            switch address.tls {
            case .disable: configuration = .init(host: host, port: port, username: address.user, password: address.password, database: address.database, tls: .disable)
            case .prefer: configuration = .init(host: host, port: port, username: address.user, password: address.password, database: address.database, tls: .prefer(.makeClientConfiguration()))
            case .require: configuration = .init(host: host, port: port, username: address.user, password: address.password, database: address.database, tls: .require(.makeClientConfiguration()))
            }
        case let .socket(path):
            single = .init(unixSocketPath: path, username: address.user, password: address.password, database: address.database)
            configuration = .init(unixSocketPath: path, username: address.user, password: address.password, database: address.database)
        }
        // The schema first, on a connection of its own: a server that is not
        // there, or a database that does not exist, is an error now, not a
        // pool retrying in the background.
        single.options.connectTimeout = TimeAmount.seconds(Int64(10))
        do {
            let connection = try await PostgresConnection.connect(configuration: single, id: 0, logger: logger)
            do {
                try await migrate(connection, logger: logger)
                try await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch {
            throw .storage("cannot open the PostgreSQL database \(address): \(Self.describe(error)); check that the server runs, and that the user and the database exist")
        }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(10)
        // The pool's own log at error level only: it warns about the first
        // lease racing the start of `run()`, which is harmless (the lease waits).
        var background = logger
        background.logLevel = .error
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        let runner = Task { await client.run() }
        return PostgresTrackerStore(address: address, client: client, runner: runner, logger: logger, timing: timing)
    }

    public func close() async {
        runner.cancel()
        await runner.value
    }

    // MARK: Schema

    /// The key of the advisory lock that serializes migrations ("shoal" in ASCII).
    private static let migrationLock: Int64 = 0x73_68_6f_61_6c

    private static let migrations: [[PostgresQuery]] = [
        [
            """
            CREATE TABLE account (
              user_name TEXT PRIMARY KEY,
              password_hash TEXT NOT NULL,
              count_downloads BIGINT NOT NULL DEFAULT 0 CHECK (count_downloads >= 0),
              count_failures BIGINT NOT NULL DEFAULT 0 CHECK (count_failures >= 0),
              bytes_served BIGINT NOT NULL DEFAULT 0 CHECK (bytes_served >= 0),
              created_at DOUBLE PRECISION NOT NULL)
            """,
            """
            CREATE TABLE report (
              reporter TEXT NOT NULL, holder TEXT NOT NULL, content TEXT NOT NULL,
              outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
              bytes BIGINT NOT NULL, standing BOOLEAN NOT NULL, reported_at DOUBLE PRECISION NOT NULL,
              PRIMARY KEY (reporter, holder, content))
            """,
            "CREATE INDEX report_by_holder ON report (holder, outcome)",
            """
            CREATE TABLE content (
              content_id TEXT PRIMARY KEY, file_size BIGINT NOT NULL, chunk_size INTEGER NOT NULL,
              digests BYTEA NOT NULL, first_shared_by TEXT NOT NULL, since DOUBLE PRECISION NOT NULL)
            """,
            """
            CREATE TABLE session (
              token TEXT PRIMARY KEY, instance TEXT NOT NULL, user_name TEXT NOT NULL,
              host TEXT NOT NULL, port INTEGER NOT NULL, key_fingerprint TEXT,
              lease_expiry DOUBLE PRECISION NOT NULL)
            """,
            "CREATE INDEX session_by_instance ON session (instance)",
            "CREATE INDEX session_by_lease ON session (lease_expiry)",
            """
            CREATE TABLE holding (
              token TEXT NOT NULL REFERENCES session ON DELETE CASCADE,
              content_id TEXT NOT NULL REFERENCES content,
              names TEXT[] NOT NULL, chunks BYTEA, version BIGINT NOT NULL,
              PRIMARY KEY (token, content_id))
            """,
            "CREATE INDEX holding_by_content ON holding (content_id)",
        ],
    ]

    private static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query("CREATE TABLE IF NOT EXISTS shoal_schema (version INTEGER NOT NULL)", logger: logger)
            var version = 0
            for try await value in try await connection.query("SELECT version FROM shoal_schema", logger: logger).decode(Int.self) {
                version = value
            }
            guard version <= migrations.count else {
                throw TrackerError.storage("the database's schema is version \(version), newer than this tracker's \(migrations.count); run a newer shoal")
            }
            for (index, statements) in migrations.enumerated() where index >= version {
                for statement in statements { try await connection.query(statement, logger: logger) }
            }
            try await connection.query("DELETE FROM shoal_schema", logger: logger)
            try await connection.query("INSERT INTO shoal_schema (version) VALUES (\(migrations.count))", logger: logger)
        }
    }

    // MARK: Accounts

    public func createAccount(_ account: Account) async throws(TrackerError) {
        try await run(.createAccount) {
            do {
                try await client.query("""
                    INSERT INTO account (user_name, password_hash, count_downloads, count_failures, bytes_served, created_at)
                    VALUES (\(account.user), \(account.passwordHash), \(Int64(max(0, account.countDownloads))),
                            \(Int64(max(0, account.countFailures))), \(Int64(clamping: account.bytesServed)), \(Date().timeIntervalSince1970))
                    """, logger: logger)
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                throw TrackerError.nameTaken(account.user)
            }
        }
    }

    public func account(named user: String) async throws(TrackerError) -> Account? {
        try await run(.account) {
            let rows = try await client.query("""
                SELECT user_name, password_hash, count_downloads, count_failures, bytes_served FROM account WHERE user_name = \(user)
                """, logger: logger)
            for try await (name, hash, downloads, failures, served) in rows.decode((String, String, Int64, Int64, Int64).self) {
                return Account(user: name, passwordHash: hash, countDownloads: Int(max(0, downloads)), countFailures: Int(max(0, failures)),
                               bytesServed: UInt64(max(0, served)))
            }
            return nil
        }
    }

    public func recordReport(_ report: ReportRecord, rule: ReputationRule) async throws(TrackerError) -> AccountCounters? {
        try await run(.recordReport) {
            try await client.withTransaction(logger: logger) { connection -> AccountCounters? in
                // Lock the holder's row: reports about one holder apply one at a time, on every tracker.
                let holder = try await connection.query("SELECT 1 FROM account WHERE user_name = \(report.holder) FOR UPDATE", logger: logger)
                var exists = false
                for try await _ in holder { exists = true }
                guard exists else { return nil }
                let standing = try await Self.hasRecord(connection, report.reporter, rule: rule, now: report.at, logger: logger)
                var firstFailure = false
                if !report.succeeded {
                    let earlier = try await connection.query("""
                        SELECT count(*) FROM report WHERE reporter = \(report.reporter) AND holder = \(report.holder) AND outcome = 'failure'
                        """, logger: logger)
                    for try await count in earlier.decode(Int64.self) { firstFailure = count == 0 }
                }
                let outcome = report.succeeded ? "success" : "failure"
                let inserted = try await connection.query("""
                    INSERT INTO report (reporter, holder, content, outcome, bytes, standing, reported_at)
                    VALUES (\(report.reporter), \(report.holder), \(report.contentID), \(outcome), \(Int64(clamping: report.bytes)),
                            \(standing), \(report.at))
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger: logger)
                var taken = false
                for try await _ in inserted { taken = true }
                guard taken else {
                    throw TrackerError.notAllowed("\(report.reporter) has reported about \(report.holder) for this content already; an account reports once per holder and content")
                }
                if report.succeeded {
                    let bytes = Int64(clamping: report.bytes)
                    try await connection.query("""
                        UPDATE account SET
                          count_downloads = CASE WHEN count_downloads >= \(Self.maximum) THEN \(Self.maximum) ELSE count_downloads + 1 END,
                          bytes_served = CASE WHEN bytes_served > \(Self.maximum) - \(bytes) THEN \(Self.maximum) ELSE bytes_served + \(bytes) END
                        WHERE user_name = \(report.holder)
                        """, logger: logger)
                } else if firstFailure {
                    var counts = standing
                    if !standing {
                        let newcomers = try await connection.query("""
                            SELECT count(DISTINCT reporter) FROM report WHERE holder = \(report.holder) AND outcome = 'failure' AND NOT standing
                            """, logger: logger)
                        for try await count in newcomers.decode(Int64.self) {
                            counts = count % Int64(rule.newcomerFailuresPerCount) == 0
                        }
                    }
                    if counts {
                        try await connection.query("""
                            UPDATE account SET count_failures = CASE WHEN count_failures >= \(Self.maximum) THEN \(Self.maximum) ELSE count_failures + 1 END
                            WHERE user_name = \(report.holder)
                            """, logger: logger)
                    }
                }
                return try await Self.counters(connection, of: report.holder, logger: logger)
            }
        }
    }

    /// Whether `user` has a record of its own at `now`: old enough, and
    /// vouched for by enough other accounts' success reports.
    private static func hasRecord(_ connection: PostgresConnection, _ user: String, rule: ReputationRule, now: Double, logger: Logger) async throws -> Bool {
        let rows = try await connection.query("""
            SELECT created_at,
                   (SELECT count(DISTINCT reporter) FROM report
                    WHERE holder = account.user_name AND outcome = 'success' AND reporter <> account.user_name)
            FROM account WHERE user_name = \(user)
            """, logger: logger)
        for try await (created, vouchers) in rows.decode((Double, Int64).self) {
            return now - created >= rule.minimumRecordAge && vouchers >= Int64(rule.minimumVouchers)
        }
        return false
    }

    private static func counters(_ connection: PostgresConnection, of user: String, logger: Logger) async throws -> AccountCounters? {
        let rows = try await connection.query("""
            SELECT user_name, count_downloads, count_failures, bytes_served FROM account WHERE user_name = \(user)
            """, logger: logger)
        for try await row in rows.decode((String, Int64, Int64, Int64).self) { return Self.counters(row) }
        return nil
    }

    private static func counters(_ row: (String, Int64, Int64, Int64)) -> AccountCounters {
        AccountCounters(user: row.0, countDownloads: Int(max(0, row.1)), countFailures: Int(max(0, row.2)), bytesServed: UInt64(max(0, row.3)))
    }

    public func accountCount() async throws(TrackerError) -> Int {
        try await run(.accountCount) {
            for try await count in try await client.query("SELECT count(*) FROM account", logger: logger).decode(Int64.self) {
                return Int(count)
            }
            return 0
        }
    }

    public func counters(after: String?, limit: Int) async throws(TrackerError) -> [AccountCounters] {
        try await run(.counters) {
            // COLLATE "C": by bytes, as SQLite orders them and as `status` pages expect.
            let rows = try await client.query("""
                SELECT user_name, count_downloads, count_failures, bytes_served FROM account
                WHERE user_name COLLATE "C" > \(after ?? "") ORDER BY user_name COLLATE "C" LIMIT \(Int64(max(0, limit)))
                """, logger: logger)
            var out: [AccountCounters] = []
            for try await row in rows.decode((String, Int64, Int64, Int64).self) { out.append(Self.counters(row)) }
            return out
        }
    }

    // MARK: Live registry

    public var keepsRegistry: Bool { true }

    public func sessionOpened(_ session: StoredSession) async throws(TrackerError) {
        try await run(.sessionOpened) {
            try await client.query("""
                INSERT INTO session (token, instance, user_name, host, port, key_fingerprint, lease_expiry)
                VALUES (\(session.token.value), \(session.instance), \(session.user), \(session.host), \(Int32(clamping: session.port)),
                        \(session.keyFingerprint), \(session.leaseExpiry))
                """, logger: logger)
        }
    }

    // Each change below is one statement (atomic by itself, one round trip):
    // data-modifying CTEs, with the contents the session no longer holds
    // deleted at the end if no other session holds them. That last check
    // sees the statement's starting snapshot, which still shows the
    // holdings the statement deletes: hence `h.token <> token`.

    public func sessionClosed(_ token: SessionToken) async throws(TrackerError) {
        try await run(.sessionClosed) {
            try await client.query("""
                WITH dropped AS (DELETE FROM holding WHERE token = \(token.value) RETURNING content_id),
                     gone AS (DELETE FROM session WHERE token = \(token.value))
                DELETE FROM content c WHERE c.content_id IN (SELECT content_id FROM dropped)
                  AND NOT EXISTS (SELECT 1 FROM holding h WHERE h.content_id = c.content_id AND h.token <> \(token.value))
                """, logger: logger)
        }
    }

    public func holdingsChanged(_ token: SessionToken, _ change: TrackerRegistry.AnnounceResult, contents: [StoredContent]) async throws(TrackerError) {
        try await run(.holdingsChanged) {
            let contentIDs = contents.map(\.manifest.contentID.hex)
            let sizes = contents.map { Int64(clamping: $0.manifest.fileSize) }
            let chunkSizes = contents.map { Int32(clamping: $0.manifest.chunkSize) }
            let digests = contents.map { ByteBuffer(bytes: $0.manifest.concatenatedDigests) }
            let firsts = contents.map(\.firstSharedBy)
            let since = contents.map(\.since)
            let held = Array(change.changed)
            let heldIDs = held.map(\.key.hex)
            // Names cannot contain '/', so one text per holding carries its set.
            let names = held.map { $0.value.names.map(\.value).sorted().joined(separator: "/") }
            // A complete holding's map is stored as NULL (bound as an empty string of bytes).
            let maps = held.map { $0.value.isComplete ? ByteBuffer() : ByteBuffer(bytes: $0.value.chunks.bytes) }
            let versions = held.map { Int64(clamping: $0.value.version) }
            let withdrawn = change.withdrawn.map(\.hex)
            // The holdings' references to new contents are checked at the end of
            // the statement, where the contents inserted before them are there.
            try await client.query("""
                WITH added AS (
                  INSERT INTO content (content_id, file_size, chunk_size, digests, first_shared_by, since)
                  SELECT * FROM UNNEST(\(contentIDs)::text[], \(sizes)::bigint[], \(chunkSizes)::integer[], \(digests)::bytea[],
                                       \(firsts)::text[], \(since)::double precision[])
                  ON CONFLICT (content_id) DO NOTHING),
                held AS (
                  INSERT INTO holding (token, content_id, names, chunks, version)
                  SELECT \(token.value), u.id, string_to_array(u.names, '/'), NULLIF(u.map, ''::bytea), u.version
                  FROM UNNEST(\(heldIDs)::text[], \(names)::text[], \(maps)::bytea[], \(versions)::bigint[]) AS u(id, names, map, version)
                  ON CONFLICT (token, content_id) DO UPDATE
                    SET names = EXCLUDED.names, chunks = EXCLUDED.chunks, version = EXCLUDED.version),
                dropped AS (
                  DELETE FROM holding WHERE token = \(token.value) AND content_id = ANY(\(withdrawn)::text[]) RETURNING content_id)
                DELETE FROM content c WHERE c.content_id IN (SELECT content_id FROM dropped)
                  AND NOT EXISTS (SELECT 1 FROM holding h WHERE h.content_id = c.content_id AND h.token <> \(token.value))
                """, logger: logger)
        }
    }

    public func renewLeases(instance: String, until expiry: Double) async throws(TrackerError) -> Int {
        try await run(.renewLeases) {
            let rows = try await client.query("""
                UPDATE session SET lease_expiry = \(expiry) WHERE instance = \(instance) RETURNING 1
                """, logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    public func expireSessions(before now: Double) async throws(TrackerError) -> Int {
        try await run(.expireSessions) {
            try await client.withTransaction(logger: logger) { connection in
                var count = 0
                for try await _ in try await connection.query("DELETE FROM session WHERE lease_expiry < \(now) RETURNING 1", logger: logger) {
                    count += 1
                }
                if count > 0 {
                    try await connection.query("""
                        DELETE FROM content c WHERE NOT EXISTS (SELECT 1 FROM holding h WHERE h.content_id = c.content_id)
                        """, logger: logger)
                }
                return count
            }
        }
    }

    public func liveRegistry() async throws(TrackerError) -> RegistrySnapshot {
        try await run(.liveRegistry) {
            try await client.withTransaction(logger: logger) { connection in
                // One snapshot of all three tables.
                try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
                var snapshot = RegistrySnapshot()
                let sessions = try await connection.query("""
                    SELECT token, instance, user_name, host, port, key_fingerprint, lease_expiry FROM session
                    """, logger: logger)
                for try await (token, instance, user, host, port, fingerprint, expiry) in sessions.decode((String, String, String, String, Int32, String?, Double).self) {
                    let key = SessionToken(value: token)
                    snapshot.sessions[key] = StoredSession(token: key, instance: instance, user: user, host: host, port: Int(port),
                                                           keyFingerprint: fingerprint, leaseExpiry: expiry)
                }
                let contents = try await connection.query("""
                    SELECT content_id, file_size, chunk_size, digests, first_shared_by, since FROM content
                    """, logger: logger)
                for try await (_, size, chunkSize, digests, first, since) in contents.decode((String, Int64, Int32, ByteBuffer, String, Double).self) {
                    let manifest = try Manifest(fileSize: UInt64(max(0, size)), chunkSize: UInt32(max(0, chunkSize)),
                                                concatenatedDigests: Array(buffer: digests))
                    snapshot.contents[manifest.contentID] = StoredContent(manifest: manifest, firstSharedBy: first, since: since)
                }
                let holdings = try await connection.query("SELECT token, content_id, names, chunks, version FROM holding", logger: logger)
                for try await (token, id, names, chunks, version) in holdings.decode((String, String, [String], ByteBuffer?, Int64).self) {
                    guard let contentID = ContentID(hex: id), let manifest = snapshot.contents[contentID]?.manifest else { continue }
                    let count = manifest.chunkCount
                    let map = chunks.flatMap { ChunkMap(count: count, bytes: Array(buffer: $0)) } ?? ChunkMap(count: count, full: true)
                    let holding = TrackerRegistry.Holding(names: Set(names.compactMap { try? FileName($0) }), chunks: map,
                                                          version: UInt64(max(0, version)))
                    snapshot.holdings[SessionToken(value: token), default: [:]][contentID] = holding
                }
                return snapshot
            }
        }
    }

    // MARK: Running and errors

    /// Runs one operation, timed, with any error turned into a ``TrackerError``.
    private func run<T: Sendable>(_ operation: StoreOperation, _ body: () async throws -> T) async throws(TrackerError) -> T {
        let start = ContinuousClock.now
        do {
            let value = try await body()
            timing?(operation, ContinuousClock.now - start, false)
            return value
        } catch {
            timing?(operation, ContinuousClock.now - start, true)
            let failure = Self.trackerError(error)
            if case .storage = failure { logger.error("store: \(operation.rawValue) failed: \(failure)") }
            throw failure
        }
    }

    static func trackerError(_ error: any Error) -> TrackerError {
        if let error = error as? TrackerError { return error }
        if let error = error as? PostgresTransactionError, let inner = error.closureError as? TrackerError { return inner }
        return .storage(describe(error))
    }

    /// A database error for the log and the `internal` reply: the server's
    /// message and SQLSTATE, or what failed on the way; never a statement's bound values.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PostgresTransactionError {
            if let inner = error.closureError ?? error.beginError ?? error.commitError { return describe(inner) }
            return "a transaction failed"
        }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return "PostgreSQL error \(error.serverInfo?[.sqlState] ?? "?"): \(message)"
            }
            if let underlying = error.underlying { return "PostgreSQL \(error.code): \(underlying)" }
            return "PostgreSQL \(error.code)"
        }
        if let error = error as? TrackerError { return error.description }
        return "\(error)"
    }
}
