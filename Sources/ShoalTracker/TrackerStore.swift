import ShoalCore

/// Everything of the tracker that must outlive one process, or be shared by
/// several tracker processes on one database: the one boundary between the
/// ``Tracker`` actor and its storage.
///
/// Two implementations, run through one test suite:
/// - ``SQLiteTrackerStore``, the embedded default: accounts and reports in a
///   SQLite file (GRDB). The live registry stays in the tracker's memory
///   only, as it always has (``keepsRegistry`` is false): one process, one swarm.
/// - ``PostgresTrackerStore`` (`--db postgres://…`): accounts, reports *and*
///   the live registry (sessions, holdings, chunk maps, manifests) in
///   PostgreSQL, so that several tracker instances can share one database.
///
/// What the tracker reads on every request (``TrackerRegistry``) is its own
/// in-memory view, kept current by its own changes and, on PostgreSQL, by the
/// other instances' changes, which ``InstanceSync`` reads back as the store
/// announces them (``StoreChange``) and applies as mirrored sessions.
///
/// Rules an implementation keeps under concurrent calls from any number of
/// trackers on the same database, in the database itself (constraints,
/// single statements, transactions with row locks), never by reading in
/// Swift and writing back:
/// - a user name exists once (``createAccount(_:)`` throws ``TrackerError/nameTaken(_:)`` for the loser);
/// - a report is taken once per (reporter, holder, content), and counters move exactly as ``ReputationRule`` says;
/// - counters only grow and saturate at 2^63 − 1.
///
/// Every method may wait on I/O; none blocks the caller's thread.
public protocol TrackerStore: AnyObject, Sendable {
    // MARK: Accounts

    /// Creates an account; throws ``TrackerError/nameTaken(_:)`` if the name exists.
    func createAccount(_ account: Account) async throws(TrackerError)
    /// The account named `user`, if any.
    func account(named user: String) async throws(TrackerError) -> Account?
    /// Stores a report and applies it to the holder's counters as `rule`
    /// says, atomically; returns the holder's counters after it (nil: no
    /// such holder). Throws ``TrackerError/notAllowed(_:)`` if this reporter
    /// has reported about this holder and content before.
    func recordReport(_ report: ReportRecord, rule: ReputationRule) async throws(TrackerError) -> AccountCounters?
    /// The number of registered accounts.
    func accountCount() async throws(TrackerError) -> Int
    /// At most `limit` accounts' counters, by user name, after `after`.
    func counters(after: String?, limit: Int) async throws(TrackerError) -> [AccountCounters]

    // MARK: Live registry

    /// Whether this store keeps the live registry; when false, the methods
    /// below do nothing and the tracker need not wait for them.
    var keepsRegistry: Bool { get }
    /// A session was opened (by `session.instance`). A session it displaced
    /// (the same user logging in again) is closed with ``sessionClosed(_:)`` first.
    func sessionOpened(_ session: StoredSession) async throws(TrackerError)
    /// A session ended (logout, a dropped connection): it goes with its
    /// holdings, and so do contents nobody holds any more.
    func sessionClosed(_ token: SessionToken) async throws(TrackerError)
    /// An announce of `token`'s session was applied: `contents` are the
    /// contents of its changed holdings, those it made known among them
    /// (`change.newContents`) written first, then its changed holdings are
    /// written and the withdrawn ones deleted. A store shared by several
    /// instances writes the other contents too when another instance has
    /// just deleted one (its last holder there left).
    func holdingsChanged(_ token: SessionToken, _ change: TrackerRegistry.AnnounceResult, contents: [StoredContent]) async throws(TrackerError)
    /// Pushes the lease of the sessions `tokens` of `instance` to `expiry`
    /// (Unix seconds): an instance that stops renewing loses its sessions
    /// once they expire, and a row it no longer holds (a close whose write
    /// failed) expires the same way. Returns how many sessions it renewed.
    @discardableResult
    func renewLeases(instance: String, tokens: [SessionToken], until expiry: Double) async throws(TrackerError) -> Int
    /// Deletes the sessions whose lease expired before `now` (with their
    /// holdings, and the contents then held by nobody); returns how many.
    @discardableResult
    func expireSessions(before now: Double) async throws(TrackerError) -> Int
    /// The live registry as stored: every session, its holdings and the contents held.
    func liveRegistry() async throws(TrackerError) -> RegistrySnapshot
    /// Blocks of chunk-map versions from a sequence shared by every tracker
    /// on the store, `count` versions at least (``MapVersionClock``); none
    /// (empty) from a store that does not keep the registry.
    func mapVersions(atLeast count: Int) async throws(TrackerError) -> [Range<UInt64>]

    /// Closes the store (after the server has stopped).
    func close() async
}

/// A session as stored: whose it is, where it serves, which tracker
/// instance owns it and until when its lease runs.
public struct StoredSession: Sendable, Equatable {
    public var token: SessionToken
    /// The tracker instance that holds the session's connection.
    public var instance: String
    public var user: String
    public var host: String
    public var port: Int
    public var keyFingerprint: String?
    /// Unix seconds after which the session is gone unless its instance renews it.
    public var leaseExpiry: Double

    public init(token: SessionToken, instance: String, user: String, host: String, port: Int, keyFingerprint: String?, leaseExpiry: Double) {
        self.token = token
        self.instance = instance
        self.user = user
        self.host = host
        self.port = port
        self.keyFingerprint = keyFingerprint
        self.leaseExpiry = leaseExpiry
    }
}

/// A content as stored: its manifest, and who shared it first and when.
public struct StoredContent: Sendable, Equatable {
    public var manifest: Manifest
    public var firstSharedBy: String
    /// Unix seconds.
    public var since: Double

    public init(manifest: Manifest, firstSharedBy: String, since: Double) {
        self.manifest = manifest
        self.firstSharedBy = firstSharedBy
        self.since = since
    }
}

/// The live registry as a store holds it.
public struct RegistrySnapshot: Sendable, Equatable {
    public var sessions: [SessionToken: StoredSession]
    /// What each session holds: names, chunk map and its version.
    public var holdings: [SessionToken: [ContentID: TrackerRegistry.Holding]]
    public var contents: [ContentID: StoredContent]

    public init(sessions: [SessionToken: StoredSession] = [:], holdings: [SessionToken: [ContentID: TrackerRegistry.Holding]] = [:],
                contents: [ContentID: StoredContent] = [:]) {
        self.sessions = sessions
        self.holdings = holdings
        self.contents = contents
    }
}

/// The store operations a tracker times (for the operator's metrics: store latency).
public enum StoreOperation: String, Sendable, CaseIterable {
    case createAccount, account, recordReport, accountCount, counters
    case sessionOpened, sessionClosed, holdingsChanged, renewLeases, expireSessions, liveRegistry
    /// Reading other instances' sessions, contents and counters back (``InstanceSync``), and version blocks.
    case remoteSessions, contents, mapVersions
}

/// Called after each store operation with how long it took and whether it
/// failed; a store given none times nothing.
public typealias StoreTiming = @Sendable (StoreOperation, Duration, _ failed: Bool) -> Void
