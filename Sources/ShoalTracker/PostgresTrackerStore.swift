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
/// SEQUENCE map_version INCREMENT BY 4096                                       -- migration 2: blocks of chunk-map versions
/// ```
///
/// Every write that changes the live registry or counters sends a
/// notification on the channel `shoal_registry` in its own transaction
/// (``StoreChange``: what changed, which instance wrote it, the session or
/// user), so that the other instances on the database re-read just that
/// (``watchChanges(_:onChange:)``, ``remoteSessions(_:)``, ``counters(of:)``).
///
/// What must hold under concurrent requests holds in the database: a name is
/// unique by its primary key (the loser's insert fails with unique_violation,
/// 23505); a report is inserted with `ON CONFLICT DO NOTHING` and the
/// counters moved in the same transaction, which first locks the holder's
/// account row, so reports about one holder are applied one at a time
/// whichever tracker takes them; counters saturate inside the `UPDATE`.
public final class PostgresTrackerStore: TrackerStore {
    public let address: PostgresAddress
    /// The tracker instance this store writes for: the writer named in its notifications.
    public let instance: String
    private let client: PostgresClient
    /// A pool of one connection for renewing and expiring leases, apart from
    /// `client`: a queue of requests' writes on the pool must not delay a
    /// renewal past the lease (then other instances would expire this one's
    /// live sessions, and its peers' reconnections would queue more writes).
    private let leaseClient: PostgresClient
    /// How to open a connection of its own (the one that listens for changes).
    private let single: PostgresConnection.Configuration
    private let runner: Task<Void, Never>
    private let logger: Logger
    private let timing: StoreTiming?

    /// The largest value a counter column holds.
    static let maximum = Int64.max

    private init(address: PostgresAddress, instance: String, client: PostgresClient, leaseClient: PostgresClient,
                 single: PostgresConnection.Configuration, runner: Task<Void, Never>, logger: Logger, timing: StoreTiming?) {
        self.address = address
        self.instance = instance
        self.single = single
        self.client = client
        self.leaseClient = leaseClient
        self.runner = runner
        self.logger = logger
        self.timing = timing
    }

    /// Connects to the database at `address` and creates or migrates its
    /// schema; `instance` names the tracker instance it writes for.
    public static func open(_ address: PostgresAddress, instance: String = UUID().uuidString.lowercased(), logger: Logger,
                            timing: StoreTiming? = nil, maximumConnections: Int = 16) async throws(TrackerError) -> PostgresTrackerStore {
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
        var leases = configuration
        leases.options.maximumConnections = 1
        leases.options.minimumConnections = 0
        leases.options.additionalStartupParameters = [("application_name", "shoal-lease")]
        let leaseClient = PostgresClient(configuration: leases, backgroundLogger: background)
        let runner = Task {
            await withDiscardingTaskGroup { group in
                group.addTask { await client.run() }
                group.addTask { await leaseClient.run() }
            }
        }
        return PostgresTrackerStore(address: address, instance: instance, client: client, leaseClient: leaseClient, single: single,
                                    runner: runner, logger: logger, timing: timing)
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
        [
            // Chunk-map versions, tracker-wide: each nextval is a block of 4096 (MapVersionClock).
            "CREATE SEQUENCE map_version START WITH 1 INCREMENT BY 4096",
        ],
    ]

    /// The versions one `nextval('map_version')` hands out.
    static let mapVersionBlock: UInt64 = 4096

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
                // The other instances re-read the holder's counters (a report changes them, or not: cheap either way).
                try await Self.drain(connection.query("SELECT pg_notify(\(Self.channel), \(payload(.counters, report.holder)))", logger: logger))
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

    /// The channel of the change notifications.
    static let channel = "shoal_registry"

    /// The notification for `kind` about `key`, written by this instance.
    private func payload(_ kind: StoreChange.Kind, _ key: String) -> String { "\(kind.rawValue) \(instance) \(key)" }

    /// Opens a session. A serving session (port > 0) displaces the user's
    /// other serving sessions on every instance, in the same statement: the
    /// instance holding one may not have told this one about it yet (two
    /// logins moments apart on two instances). Their owners read that they
    /// were closed and close their connections.
    public func sessionOpened(_ session: StoredSession) async throws(TrackerError) {
        try await run(.sessionOpened) {
            let serving = session.port > 0
            try await retrying { _ in
                try await Self.drain(client.query("""
                    WITH displaced AS (
                      SELECT token FROM session
                      WHERE user_name = \(session.user) AND port > 0 AND \(serving) AND token <> \(session.token.value) FOR UPDATE),
                    dropped AS (DELETE FROM holding WHERE token IN (SELECT token FROM displaced) RETURNING content_id),
                    gone AS (DELETE FROM session WHERE token IN (SELECT token FROM displaced) RETURNING token),
                    forgotten AS (
                      DELETE FROM content c WHERE c.content_id IN (SELECT content_id FROM dropped)
                        AND NOT EXISTS (SELECT 1 FROM holding h WHERE h.content_id = c.content_id AND h.token NOT IN (SELECT token FROM displaced))),
                    opened AS (
                      INSERT INTO session (token, instance, user_name, host, port, key_fingerprint, lease_expiry)
                      VALUES (\(session.token.value), \(session.instance), \(session.user), \(session.host), \(Int32(clamping: session.port)),
                              \(session.keyFingerprint), \(session.leaseExpiry))
                      RETURNING token)
                    SELECT pg_notify(\(Self.channel), \(StoreChange.Kind.closed.rawValue + " " + instance + " ") || token) FROM gone
                    UNION ALL
                    SELECT pg_notify(\(Self.channel), \(payload(.session, session.token.value))) FROM opened
                    """, logger: logger))
            }
        }
    }

    // Each change below is one statement (atomic by itself, one round trip):
    // data-modifying CTEs, with the contents the session no longer holds
    // deleted at the end if no other session holds them. That last check
    // sees the statement's starting snapshot, which still shows the
    // holdings the statement deletes: hence `h.token <> token`.
    //
    // Two instances can race on one content: A deletes it as its last
    // holder leaves while B inserts a holding of it. Whichever statement
    // loses fails on the holding's foreign key (23503), or the two wait on
    // each other (deadlock, 40P01); it is run again (``retrying(_:_:)``), and
    // then sees the other's change: B inserts the content anew with its
    // holding, A finds a holder and keeps the content.

    public func sessionClosed(_ token: SessionToken) async throws(TrackerError) {
        _ = try await run(.sessionClosed) {
            try await retrying { _ in
                try await Self.drain(client.query("""
                    WITH dropped AS (DELETE FROM holding WHERE token = \(token.value) RETURNING content_id),
                         gone AS (DELETE FROM session WHERE token = \(token.value) RETURNING token),
                         forgotten AS (
                           DELETE FROM content c WHERE c.content_id IN (SELECT content_id FROM dropped)
                             AND NOT EXISTS (SELECT 1 FROM holding h WHERE h.content_id = c.content_id AND h.token <> \(token.value)))
                    SELECT pg_notify(\(Self.channel), \(payload(.closed, token.value))) FROM gone
                    """, logger: logger))
            }
        }
    }

    /// Writes an announce's holdings. `contents` are the manifests of the
    /// contents the announce made known and of those it holds now (any of
    /// which another instance may be deleting at this moment): the first try
    /// inserts only the new ones, a try after a lost race all of them.
    public func holdingsChanged(_ token: SessionToken, _ change: TrackerRegistry.AnnounceResult, contents: [StoredContent]) async throws(TrackerError) {
        try await run(.holdingsChanged) {
            let fresh = Set(change.newContents)
            try await retrying { attempt in
                let contents = attempt == 0 ? contents.filter { fresh.contains($0.manifest.contentID) } : contents
                try await writeHoldings(token, change, contents: contents)
            }
        }
    }

    private func writeHoldings(_ token: SessionToken, _ change: TrackerRegistry.AnnounceResult, contents: [StoredContent]) async throws {
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
        try await Self.drain(client.query("""
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
              DELETE FROM holding WHERE token = \(token.value) AND content_id = ANY(\(withdrawn)::text[]) RETURNING content_id),
            forgotten AS (
              DELETE FROM content c WHERE c.content_id IN (SELECT content_id FROM dropped)
                AND NOT EXISTS (SELECT 1 FROM holding h WHERE h.content_id = c.content_id AND h.token <> \(token.value)))
            SELECT pg_notify(\(Self.channel), \(payload(.session, token.value)))
            """, logger: logger))
    }

    public func renewLeases(instance: String, tokens: [SessionToken], until expiry: Double) async throws(TrackerError) -> Int {
        let values = tokens.map(\.value)
        return try await run(.renewLeases) {
            let rows = try await leaseClient.query("""
                UPDATE session SET lease_expiry = \(expiry) WHERE instance = \(instance) AND token = ANY(\(values)::text[]) RETURNING 1
                """, logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    public func expireSessions(before now: Double) async throws(TrackerError) -> Int {
        try await run(.expireSessions) {
            try await retrying { _ in
                try await leaseClient.withTransaction(logger: logger) { connection in
                    var count = 0
                    let expired = try await connection.query("""
                        WITH gone AS (DELETE FROM session WHERE lease_expiry < \(now) RETURNING token)
                        SELECT pg_notify(\(Self.channel), \(StoreChange.Kind.expired.rawValue + " " + instance + " ") || token) FROM gone
                        """, logger: logger)
                    for try await _ in expired { count += 1 }
                    if count > 0 {
                        try await connection.query("""
                            DELETE FROM content c WHERE NOT EXISTS (SELECT 1 FROM holding h WHERE h.content_id = c.content_id)
                            """, logger: logger)
                    }
                    return count
                }
            }
        }
    }

    public func liveRegistry() async throws(TrackerError) -> RegistrySnapshot {
        try await run(.liveRegistry) {
            try await client.withTransaction(logger: logger) { connection in
                // One snapshot of all three tables.
                try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
                var snapshot = RegistrySnapshot()
                let contents = try await connection.query("""
                    SELECT content_id, file_size, chunk_size, digests, first_shared_by, since FROM content
                    """, logger: logger)
                snapshot.contents = try await Self.contents(contents)
                for remote in try await Self.sessions(connection, nil, logger: logger) {
                    snapshot.sessions[remote.session.token] = remote.session
                    if !remote.holdings.isEmpty { snapshot.holdings[remote.session.token] = remote.holdings }
                }
                return snapshot
            }
        }
    }

    // MARK: Reading what other instances changed

    /// The sessions `tokens` names (all of them: nil) as stored, each with
    /// its holdings and its account's counters, read by one statement (one
    /// snapshot, one round trip). A token not in the result has no session any more.
    public func remoteSessions(_ tokens: [SessionToken]?) async throws(TrackerError) -> [TrackerRegistry.RemoteSession] {
        try await run(.remoteSessions) {
            try await client.withConnection { connection in try await Self.sessions(connection, tokens, logger: logger) }
        }
    }

    /// Sessions with holdings and counters; the chunk count of a holding's
    /// map comes from its content's digests (32 bytes a chunk).
    private static func sessions(_ connection: PostgresConnection, _ tokens: [SessionToken]?, logger: Logger) async throws -> [TrackerRegistry.RemoteSession] {
        let all = tokens == nil
        let keys = (tokens ?? []).map(\.value)
        var found: [SessionToken: TrackerRegistry.RemoteSession] = [:]
        let rows = try await connection.query("""
            SELECT s.token, s.instance, s.user_name, s.host, s.port, s.key_fingerprint, s.lease_expiry,
                   a.count_downloads, a.count_failures, a.bytes_served,
                   h.content_id, h.names, h.chunks, h.version, length(c.digests) / 32
            FROM session s
              LEFT JOIN account a ON a.user_name = s.user_name
              LEFT JOIN holding h ON h.token = s.token
              LEFT JOIN content c ON c.content_id = h.content_id
            WHERE \(all) OR s.token = ANY(\(keys)::text[])
            """, logger: logger)
        for try await (token, instance, user, host, port, fingerprint, expiry, downloads, failures, served, id, names, chunks, version, count)
            in rows.decode((String, String, String, String, Int32, String?, Double, Int64?, Int64?, Int64?,
                            String?, [String]?, ByteBuffer?, Int64?, Int32?).self) {
            let key = SessionToken(value: token)
            if found[key] == nil {
                let stored = StoredSession(token: key, instance: instance, user: user, host: host, port: Int(port),
                                           keyFingerprint: fingerprint, leaseExpiry: expiry)
                let counters = downloads.map { Self.counters((user, $0, failures ?? 0, served ?? 0)) }
                found[key] = TrackerRegistry.RemoteSession(session: stored, holdings: [:], counters: counters)
            }
            guard let id, let contentID = ContentID(hex: id), let names, let version, let count else { continue }
            let chunkCount = Int(max(0, count))
            guard let map = chunks.map({ ChunkMap(count: chunkCount, bytes: Array(buffer: $0)) }) ?? ChunkMap(count: chunkCount, full: true) else { continue }
            found[key]!.holdings[contentID] = TrackerRegistry.Holding(names: Set(names.compactMap { try? FileName($0) }), chunks: map,
                                                                     version: UInt64(max(0, version)))
        }
        return Array(found.values)
    }

    /// The stored contents among `ids` (a content nobody holds is not stored).
    public func contents(_ ids: some Collection<ContentID>) async throws(TrackerError) -> [ContentID: StoredContent] {
        guard !ids.isEmpty else { return [:] }
        let keys = ids.map(\.hex)
        return try await run(.contents) {
            try await Self.contents(try await client.query("""
                SELECT content_id, file_size, chunk_size, digests, first_shared_by, since FROM content WHERE content_id = ANY(\(keys)::text[])
                """, logger: logger))
        }
    }

    private static func contents(_ rows: PostgresRowSequence) async throws -> [ContentID: StoredContent] {
        var contents: [ContentID: StoredContent] = [:]
        for try await (_, size, chunkSize, digests, first, since) in rows.decode((String, Int64, Int32, ByteBuffer, String, Double).self) {
            let manifest = try Manifest(fileSize: UInt64(max(0, size)), chunkSize: UInt32(max(0, chunkSize)),
                                        concatenatedDigests: Array(buffer: digests))
            contents[manifest.contentID] = StoredContent(manifest: manifest, firstSharedBy: first, since: since)
        }
        return contents
    }

    /// The counters of the accounts `users` (those that exist).
    public func counters(of users: [String]) async throws(TrackerError) -> [AccountCounters] {
        guard !users.isEmpty else { return [] }
        return try await run(.counters) {
            let rows = try await client.query("""
                SELECT user_name, count_downloads, count_failures, bytes_served FROM account WHERE user_name = ANY(\(users)::text[])
                """, logger: logger)
            var out: [AccountCounters] = []
            for try await row in rows.decode((String, Int64, Int64, Int64).self) { out.append(Self.counters(row)) }
            return out
        }
    }

    /// Blocks of chunk-map versions from the shared sequence, at least `count` versions in all.
    public func mapVersions(atLeast count: Int) async throws(TrackerError) -> [Range<UInt64>] {
        let blocks = Int64(max(1, (UInt64(max(count, 1)) + Self.mapVersionBlock - 1) / Self.mapVersionBlock))
        return try await run(.mapVersions) {
            var ranges: [Range<UInt64>] = []
            let rows = try await client.query("SELECT nextval('map_version') FROM generate_series(1, \(blocks))", logger: logger)
            for try await start in rows.decode(Int64.self) {
                let first = UInt64(max(1, start))
                ranges.append(first..<(first + Self.mapVersionBlock))
            }
            return ranges.sorted { $0.lowerBound < $1.lowerBound }
        }
    }

    /// Listens for the changes the instances on the database write
    /// (including this one's: the caller skips those it made itself) on a
    /// connection of its own, named `shoal-listen` to the server. Calls
    /// `onListening` once the server listens (what was written before may
    /// have been missed: read it all then), and `onChange` for each change,
    /// until the connection drops (it throws) or the task is cancelled (it returns).
    public func watchChanges(_ onListening: @Sendable () async -> Void, onChange: @Sendable (StoreChange) -> Void) async throws(TrackerError) {
        var configuration = single
        configuration.options.additionalStartupParameters = [("application_name", "shoal-listen")]
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
            do {
                try await connection.listen(on: Self.channel) { notifications in
                    await onListening()
                    for try await notification in notifications {
                        if let change = StoreChange(payload: notification.payload) { onChange(change) }
                    }
                }
                try? await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch {
            if Task.isCancelled { return }
            throw .storage("the connection listening for other instances' changes failed: \(Self.describe(error))")
        }
        if !Task.isCancelled { throw .storage("the connection listening for other instances' changes closed") }
    }

    /// Runs `body` again (at most 3 tries in all) when it loses a race with
    /// another transaction: a foreign key that vanished (23503), a
    /// serialization failure (40001) or a deadlock (40P01). `body` gets the
    /// number of the try, from 0.
    @discardableResult
    private func retrying<T>(_ body: (Int) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body(attempt)
            } catch where attempt < 2 && Self.isLostRace(error) {
                attempt += 1
                logger.debug("store: lost a race with another transaction (\(Self.describe(error))); try \(attempt + 1) of 3")
            }
        }
    }

    /// Reads a statement's rows to the end (the notifications it returns), so its connection is free for the next.
    @discardableResult
    private static func drain(_ rows: PostgresRowSequence) async throws -> Int {
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    static func isLostRace(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError, let inner = error.closureError ?? error.commitError { return isLostRace(inner) }
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return ["23503", "40001", "40P01"].contains(state)
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
