import ShoalCore

/// The sessions of other tracker instances on the same database, mirrored
/// into this one's registry (``InstanceSync`` reads them from the shared
/// store and applies them here).
///
/// A mirrored session is *remote* (``Peer/instance`` names its owner): it has
/// no connection here and no request with its token is taken here, but it is
/// listed, detailed with its counters and chunk maps, and shown in `status`
/// like any session. Mirror changes go through the same mutations as local
/// ones (``setHolding(_:_:_:)``, ``withdraw(_:_:)``, ``logout(_:)``,
/// ``setCounters(user:downloads:failures:bytesServed:)``) and bump
/// ``generation`` as an announce or a logout would.
extension TrackerRegistry {
    /// Another instance's session as the shared store holds it.
    public struct RemoteSession: Sendable, Equatable {
        public var session: StoredSession
        /// What it holds; versions are the store's (tracker-wide).
        public var holdings: [ContentID: Holding]
        /// Its account's counters; nil: not read (the mirror keeps what it has).
        public var counters: AccountCounters?

        public init(session: StoredSession, holdings: [ContentID: Holding], counters: AccountCounters?) {
            self.session = session
            self.holdings = holdings
            self.counters = counters
        }
    }

    /// The tokens of this instance's own sessions.
    public var localTokens: [SessionToken] { sessions.lazy.filter { !$0.value.isRemote }.map(\.key) }

    /// The tokens of the sessions mirrored from other instances.
    public var remoteTokens: Set<SessionToken> { Set(sessions.lazy.filter { $0.value.isRemote }.map(\.key)) }

    /// Which of `ids` the registry has no manifest of.
    public func unknownContents(_ ids: some Sequence<ContentID>) -> Set<ContentID> {
        Set(ids.filter { contents[$0] == nil })
    }

    /// Makes another instance's session what the store says it is: opened
    /// if new, its address, counters and holdings updated, holdings it no
    /// longer has withdrawn. `manifests` must hold the contents the registry
    /// does not know yet; a holding whose manifest is missing (or does not fit
    /// its map) is left out until the next read. A session of this instance
    /// is never touched. Returns whether anything changed.
    @discardableResult
    public mutating func mirror(_ remote: RemoteSession, manifests: [ContentID: StoredContent]) -> Bool {
        let token = remote.session.token
        if let existing = sessions[token], !existing.isRemote { return false }
        var changed = false
        let stored = remote.session
        if var peer = sessions[token] {
            if peer.host != stored.host || peer.port != stored.port || peer.keyFingerprint != stored.keyFingerprint || peer.instance != stored.instance {
                peer.host = stored.host
                peer.port = stored.port
                peer.keyFingerprint = stored.keyFingerprint
                peer.instance = stored.instance
                sessions[token] = peer
                touchHoldings(of: token)
                changed = true
            }
        } else {
            var peer = Peer(user: stored.user, host: stored.host, port: stored.port, connection: 0,
                            countDownloads: remote.counters?.countDownloads ?? 0, countFailures: remote.counters?.countFailures ?? 0,
                            bytesServed: remote.counters?.bytesServed ?? 0)
            peer.keyFingerprint = stored.keyFingerprint
            peer.instance = stored.instance
            sessions[token] = peer
            sessionsByUser[stored.user, default: []].insert(token)
            // A serving session of this instance stays the user's first.
            if stored.port > 0, tokenByUser[stored.user].flatMap({ sessions[$0] })?.isRemote != false { tokenByUser[stored.user] = token }
            changed = true
        }
        if let counters = remote.counters, let peer = sessions[token],
           peer.countDownloads != counters.countDownloads || peer.countFailures != counters.countFailures || peer.bytesServed != counters.bytesServed {
            setCounters(user: counters.user, downloads: counters.countDownloads, failures: counters.countFailures, bytesServed: counters.bytesServed)
        }
        let old = sessions[token]!.holdings
        for id in old.keys where remote.holdings[id] == nil {
            withdraw(token, id)
            changed = true
        }
        for (id, holding) in remote.holdings where old[id] != holding {
            if contents[id] == nil {
                guard let content = manifests[id], content.manifest.contentID == id else { continue }
                contents[id] = Content(manifest: content.manifest, since: content.since, firstSharedBy: content.firstSharedBy)
                totalChunks += content.manifest.chunkCount
            }
            guard contents[id]!.manifest.chunkCount == holding.chunks.count else {
                if contents[id]!.holders.isEmpty { forget(id) }
                continue
            }
            var mirrored = holding
            // No gains are known for another instance's map: a downloader
            // that knows an older version is sent the whole map.
            mirrored.deltaFloor = holding.version
            mirrored.gains = []
            setHolding(token, id, mirrored)
            changed = true
        }
        if changed { generation &+= 1 }
        return changed
    }

    /// Closes a session of another instance (it logged out, was dropped or
    /// expired); a session of this instance is never closed here.
    @discardableResult
    public mutating func dropRemote(_ token: SessionToken) -> Peer? {
        guard sessions[token]?.isRemote == true else { return nil }
        return logout(token)
    }

    /// Makes the mirrored sessions exactly `remotes` (a full read of the
    /// store): the remote sessions not among them are closed, the others
    /// applied as ``mirror(_:manifests:)`` does. Returns how many sessions changed.
    @discardableResult
    public mutating func mirrorAll(_ remotes: [RemoteSession], manifests: [ContentID: StoredContent]) -> Int {
        let present = Set(remotes.map(\.session.token))
        var changes = 0
        for token in remoteTokens where !present.contains(token) {
            dropRemote(token)
            changes += 1
        }
        for remote in remotes where mirror(remote, manifests: manifests) { changes += 1 }
        return changes
    }

    /// Adds versions from the shared sequence (``MapVersionClock/supply(_:)``).
    public mutating func supplyVersions(_ blocks: [Range<UInt64>]) { versions.supply(blocks) }

    /// At most how many chunk-map versions `announcement` can take: two per held file.
    public static func versionsNeeded(for announcement: Announcement) -> Int { 2 * announcement.entries.count }
}
