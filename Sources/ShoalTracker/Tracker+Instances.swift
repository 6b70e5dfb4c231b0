import ShoalCore

/// What ``InstanceSync`` applies to a tracker sharing its store with other
/// instances: their sessions (mirrored, ``TrackerRegistry/mirror(_:manifests:)``),
/// the counters reports taken there moved, and the end of sessions, this
/// instance's own among them when another instance closed or expired them.
extension Tracker {
    /// Tops up the registry's chunk-map versions from the shared sequence so
    /// that an announce needing `count` of them runs without waiting on the database.
    func ensureMapVersions(_ count: Int) async throws(TrackerError) {
        guard registry.versions.isShared else { return }
        // A few tries: a sequence that went backwards (a database restored
        // from a backup) supplies only versions already used, never enough.
        for _ in 0..<3 where registry.versions.available < count {
            registry.supplyVersions(try await store.mapVersions(atLeast: count - registry.versions.available))
        }
        guard registry.versions.available >= count else {
            throw .storage("the shared chunk-map version sequence (map_version) gives only versions already used; was the database restored from an older backup? Restart every tracker instance on it")
        }
    }

    /// The sessions this instance holds (whose leases it renews).
    func ownSessionTokens() -> [SessionToken] { registry.localTokens }

    /// Which of `ids` the registry has no manifest of (to be read from the store).
    func unknownContents(_ ids: [ContentID]) -> Set<ContentID> { registry.unknownContents(ids) }

    /// Applies other instances' sessions as just read from the store:
    /// `asked` are the tokens that were read, and those missing from
    /// `remotes` have ended. Sessions of this instance are left alone.
    func applyRemote(_ remotes: [TrackerRegistry.RemoteSession], asked: [SessionToken], manifests: [ContentID: StoredContent]) {
        let found = Set(remotes.map(\.session.token))
        for token in asked where !found.contains(token) { registry.dropRemote(token) }
        for remote in remotes where remote.session.instance != instance { registry.mirror(remote, manifests: manifests) }
        metrics.registry(connected: registry.connectedCount, files: registry.contentCount)
    }

    /// Makes the mirrored sessions exactly the other instances' sessions in
    /// `remotes` (a full read of the store); returns how many changed.
    @discardableResult
    func applyAllRemote(_ remotes: [TrackerRegistry.RemoteSession], manifests: [ContentID: StoredContent]) -> Int {
        let changes = registry.mirrorAll(remotes.filter { $0.session.instance != instance }, manifests: manifests)
        metrics.registry(connected: registry.connectedCount, files: registry.contentCount)
        return changes
    }

    /// The session `token` ended in the store (closed or expired, by the
    /// instance `writer`). Another instance's session leaves the mirror. A
    /// session of this one that another instance closed (its user logged in
    /// there) or that expired (this instance missed its renewals) ends here
    /// too, with its connection, so that its peer logs in again.
    func sessionEnded(_ token: SessionToken, by writer: String, expired: Bool) {
        guard let peer = registry.peer(token) else { return }
        if peer.isRemote {
            registry.dropRemote(token)
        } else if writer != instance || expired {
            endLocal(token, peer, because: expired ? "expired in the shared store" : "closed by tracker instance \(writer)")
        }
        metrics.registry(connected: registry.connectedCount, files: registry.contentCount)
    }

    /// This instance's sessions whose writes to the store have all finished
    /// (a login replacing another session is in the registry before its own
    /// write is even queued: `unstored`): a full read of the store made after
    /// this must show each of them, or it was deleted (``sessionsGone(_:)``).
    func settledLocalSessions() -> Set<SessionToken> {
        Set(registry.sessions.lazy.filter { !$0.value.isRemote && self.writes[$0.key] == nil && !self.unstored.contains($0.key) }.map(\.key))
    }

    /// Sessions of this instance that a full read of the store no longer
    /// shows, though they were written before it (``settledLocalSessions()``):
    /// another instance closed or expired them, and this one missed the
    /// notification. They end here, with their connections.
    func sessionsGone(_ tokens: some Sequence<SessionToken>) {
        for token in tokens {
            guard let peer = registry.peer(token), !peer.isRemote else { continue }
            endLocal(token, peer, because: "gone from the shared store (closed or expired by another instance)")
        }
        metrics.registry(connected: registry.connectedCount, files: registry.contentCount)
    }

    private func endLocal(_ token: SessionToken, _ peer: TrackerRegistry.Peer, because reason: String) {
        registry.logout(token)
        closeConnection(peer.connection)
        logger.notice("session of \(peer.user) \(reason); its connection is closed so it logs in again")
    }

    /// Counters read from the store after reports taken on other instances.
    func applyCounters(_ counters: [AccountCounters]) {
        for account in counters {
            registry.setCounters(user: account.user, downloads: account.countDownloads, failures: account.countFailures,
                                 bytesServed: account.bytesServed)
        }
    }
}
