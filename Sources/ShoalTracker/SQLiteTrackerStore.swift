import NIOPosix

/// The embedded store, the default: accounts and reports in a SQLite file
/// (``SQLiteAccountStore``, through GRDB), run on a small thread pool of its
/// own so that no caller blocks on the database. The live registry is not
/// stored (``keepsRegistry`` is false): it lives in the one tracker's
/// memory, and a restart starts it empty, as peers log in and announce again.
public final class SQLiteTrackerStore: TrackerStore {
    public let accounts: SQLiteAccountStore
    private let pool: NIOThreadPool
    private let timing: StoreTiming?

    /// Opens (creating if needed) the database at `path`.
    public init(path: String, timing: StoreTiming? = nil) throws(TrackerError) {
        accounts = try SQLiteAccountStore(path: path)
        // GRDB's queue runs one statement at a time: two threads let one wait on it while another returns.
        pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        self.timing = timing
    }

    /// The database file.
    public var path: String { accounts.path }

    public func createAccount(_ account: Account) async throws(TrackerError) {
        try await run(.createAccount) { [accounts] () throws(TrackerError) in try accounts.create(account) }
    }

    public func account(named user: String) async throws(TrackerError) -> Account? {
        try await run(.account) { [accounts] () throws(TrackerError) in try accounts.account(named: user) }
    }

    public func recordReport(_ report: ReportRecord, rule: ReputationRule) async throws(TrackerError) -> AccountCounters? {
        try await run(.recordReport) { [accounts] () throws(TrackerError) in try accounts.recordReport(report, rule: rule) }
    }

    public func accountCount() async throws(TrackerError) -> Int {
        try await run(.accountCount) { [accounts] () throws(TrackerError) in try accounts.count() }
    }

    public func counters(after: String?, limit: Int) async throws(TrackerError) -> [AccountCounters] {
        try await run(.counters) { [accounts] () throws(TrackerError) in try accounts.counters(after: after, limit: limit) }
    }

    // MARK: Live registry: in the tracker's memory only.

    public var keepsRegistry: Bool { false }
    public func sessionOpened(_ session: StoredSession) async throws(TrackerError) {}
    public func sessionClosed(_ token: SessionToken) async throws(TrackerError) {}
    public func holdingsChanged(_ token: SessionToken, _ change: TrackerRegistry.AnnounceResult, contents: [StoredContent]) async throws(TrackerError) {}
    public func renewLeases(instance: String, tokens: [SessionToken], until expiry: Double) async throws(TrackerError) -> Int { 0 }
    public func expireSessions(before now: Double) async throws(TrackerError) -> Int { 0 }
    public func liveRegistry() async throws(TrackerError) -> RegistrySnapshot { RegistrySnapshot() }
    public func mapVersions(atLeast count: Int) async throws(TrackerError) -> [Range<UInt64>] { [] }

    public func close() async {
        try? await pool.shutdownGracefully()
        accounts.close()
    }

    /// Runs `work` on the pool, timed.
    private func run<T: Sendable>(_ operation: StoreOperation, _ work: @escaping @Sendable () throws(TrackerError) -> T) async throws(TrackerError) -> T {
        let start = ContinuousClock.now
        do {
            let value = try await pool.runIfActive { try work() }
            timing?(operation, ContinuousClock.now - start, false)
            return value
        } catch {
            timing?(operation, ContinuousClock.now - start, true)
            if let error = error as? TrackerError { throw error }
            throw .storage("the database's worker threads have stopped (\(error)); the tracker is shutting down")
        }
    }
}
