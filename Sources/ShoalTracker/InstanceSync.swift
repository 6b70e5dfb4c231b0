import Foundation
import Logging
import ShoalCore
import Synchronization

/// Keeps one tracker instance in step with the others on a shared
/// PostgreSQL store, and keeps its own sessions alive there.
///
/// - **Change feed.** Every write to the live registry or to counters
///   notifies the database's listeners (``StoreChange``). One connection
///   listens; the changes other instances made are collected (coalesced by
///   session and user) and one loop reads just those back and applies them
///   to the ``Tracker``'s registry, in order, one batch at a time: a read
///   made later is applied later, so an older state never overwrites a newer one.
/// - **Full resync**, every ``resyncInterval`` and after the listening
///   connection (re)connects: every other instance's session is read back.
///   It is the safety net for notifications missed while not listening.
///   A dropped listening connection is reconnected with backoff (0.1 s, doubling to 5 s).
/// - **Leases.** Every `leaseSeconds / 3`, this instance renews the leases
///   of its own sessions; every half second it deletes the sessions whose lease
///   ran out (any instance may: the deletion is idempotent, and notifies).
///   An instance that dies stops renewing, and its sessions vanish from
///   every other instance at most a lease (plus half a second) after its last renewal.
///
/// Started by ``TrackerServer`` when its store is PostgreSQL; it runs until cancelled.
final class InstanceSync: Sendable {
    private let tracker: Tracker
    private let store: PostgresTrackerStore
    private let instance: String
    private let leaseSeconds: Double
    private let resyncInterval: Double
    private let logger: Logger
    private let now: @Sendable () -> Double

    /// What the feed asked to read again, not yet read: sets, so a flood of
    /// changes to the same sessions and users takes no more room than they do.
    private struct Pending {
        var sessions: Set<SessionToken> = []
        var users: Set<String> = []
        /// Sessions whose end was announced: who ended them, and whether by expiry.
        var ended: [SessionToken: (writer: String, expired: Bool)] = [:]
        var resync = false
        var isEmpty: Bool { sessions.isEmpty && users.isEmpty && ended.isEmpty && !resync }
    }

    private let pending = Mutex(Pending())
    /// Whether the current listening connection got as far as listening.
    private let listened = Mutex(false)
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>

    init(tracker: Tracker, store: PostgresTrackerStore, leaseSeconds: Double, resyncInterval: Double, logger: Logger,
         now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.tracker = tracker
        self.store = store
        self.instance = tracker.instance
        self.leaseSeconds = leaseSeconds
        self.resyncInterval = resyncInterval
        self.logger = logger
        self.now = now
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// At start, before serving: deletes expired sessions, then mirrors
    /// every other instance's live sessions.
    func loadOthers() async throws(TrackerError) {
        _ = try await store.expireSessions(before: now())
        try await resync()
    }

    /// Listens, applies, renews and expires until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen() }
            group.addTask { await self.apply() }
            group.addTask { await self.leases() }
            group.addTask { await self.resyncPeriodically() }
        }
        wake.finish()
    }

    // MARK: The feed

    /// Keeps a listening connection, reconnecting with backoff.
    private func listen() async {
        var backoff = 0.1
        while !Task.isCancelled {
            do {
                try await store.watchChanges({
                    self.listened.withLock { $0 = true }
                    // Whatever changed while not listening: read it all.
                    self.request { $0.resync = true }
                }, onChange: { change in self.received(change) })
            } catch {
                // A connection that got as far as listening starts the backoff over.
                if listened.withLock({ state in defer { state = false }; return state }) { backoff = 0.1 }
                logger.warning("instance sync: \(error); listening again in \(backoff) s")
            }
            guard (try? await Task.sleep(for: .seconds(backoff))) != nil else { return }
            backoff = min(5, backoff * 2)
        }
    }

    private func received(_ change: StoreChange) {
        switch change.kind {
        case .session:
            guard change.writer != instance else { return }
            request { $0.sessions.insert(SessionToken(value: change.key)) }
        case .counters:
            guard change.writer != instance else { return }
            request { $0.users.insert(change.key) }
        case .closed, .expired:
            // This instance's own closings too: a late read of that session may have mirrored it again.
            request { $0.ended[SessionToken(value: change.key)] = (change.writer, change.kind == .expired) }
        }
    }

    private func request(_ change: (inout Pending) -> Void) {
        pending.withLock { change(&$0) }
        wake.yield()
    }

    /// Applies what the feed asked for, one batch at a time.
    private func apply() async {
        for await _ in wakeups {
            let batch = pending.withLock { state -> Pending in
                defer { state = Pending() }
                return state
            }
            guard !batch.isEmpty else { continue }
            do {
                try await apply(batch)
            } catch {
                logger.warning("instance sync: reading other instances' changes failed (\(error)); reading everything again in 1 s")
                guard (try? await Task.sleep(for: .seconds(1))) != nil else { return }
                // The counters asked for are not in a full read of the sessions: ask for them again.
                request {
                    $0.resync = true
                    $0.users.formUnion(batch.users)
                }
            }
        }
    }

    private func apply(_ batch: Pending) async throws(TrackerError) {
        for (token, end) in batch.ended { await tracker.sessionEnded(token, by: end.writer, expired: end.expired) }
        if batch.resync {
            try await resync()
        } else if !batch.sessions.isEmpty {
            let asked = Array(batch.sessions)
            let remotes = try await store.remoteSessions(asked)
            let manifests = try await missingManifests(remotes)
            await tracker.applyRemote(remotes, asked: asked, manifests: manifests)
        }
        if !batch.users.isEmpty {
            await tracker.applyCounters(try await store.counters(of: Array(batch.users)))
        }
    }

    /// Reads every session back and makes the mirror match it; this
    /// instance's sessions that were stored before the read and are missing
    /// from it end too (a notification of their end was missed).
    private func resync() async throws(TrackerError) {
        let settled = await tracker.settledLocalSessions()
        let remotes = try await store.remoteSessions(nil)
        let stored = Set(remotes.map(\.session.token))
        let gone = settled.subtracting(stored)
        if !gone.isEmpty { await tracker.sessionsGone(gone) }
        let manifests = try await missingManifests(remotes)
        let changes = await tracker.applyAllRemote(remotes, manifests: manifests)
        // Counters of this instance's own peers, moved by reports taken elsewhere
        // while a notification was missed (unchanged ones change nothing).
        await tracker.applyCounters(remotes.filter { $0.session.instance == instance }.compactMap(\.counters))
        if changes > 0 { logger.debug("instance sync: a full read changed \(changes) mirrored session\(changes == 1 ? "" : "s")") }
    }

    /// The manifests of the contents `remotes` hold that the registry does not know yet.
    private func missingManifests(_ remotes: [TrackerRegistry.RemoteSession]) async throws(TrackerError) -> [ContentID: StoredContent] {
        let held = remotes.filter { $0.session.instance != instance }.flatMap(\.holdings.keys)
        let unknown = await tracker.unknownContents(held)
        return try await store.contents(unknown)
    }

    // MARK: Timers

    private func resyncPeriodically() async {
        while (try? await Task.sleep(for: .seconds(resyncInterval))) != nil {
            request { $0.resync = true }
        }
    }

    /// Renews this instance's leases every third of a lease, and deletes
    /// everyone's lapsed ones every half second (or third of a lease, if
    /// shorter): a dead instance's sessions go at most that long after their lease.
    private func leases() async {
        let renewEvery = max(0.05, leaseSeconds / 3)
        let tick = min(0.5, renewEvery)
        var renewed = ContinuousClock.now
        // After the database failed or stalled, no instance could renew:
        // expiring at once would delete the others' live sessions before
        // they renew. So for one lease after a failed or late round, this
        // instance renews but expires nobody.
        var troubled: ContinuousClock.Instant?
        while (try? await Task.sleep(for: .seconds(tick))) != nil {
            do {
                let t = now()
                let started = ContinuousClock.now
                if started - renewed >= .seconds(renewEvery) - .milliseconds(10) {
                    _ = try await store.renewLeases(instance: instance, tokens: await tracker.ownSessionTokens(), until: t + leaseSeconds)
                    if started - renewed > .seconds(2 * renewEvery) || ContinuousClock.now - started > .seconds(renewEvery) {
                        troubled = ContinuousClock.now
                    }
                    renewed = ContinuousClock.now
                }
                if let since = troubled, ContinuousClock.now - since < .seconds(leaseSeconds) { continue }
                troubled = nil
                _ = try await store.expireSessions(before: t)
            } catch {
                troubled = ContinuousClock.now
                logger.warning("instance sync: renewing or expiring leases failed (\(error)); trying again in \(tick) s, expiring nobody for \(leaseSeconds) s")
            }
        }
    }
}
