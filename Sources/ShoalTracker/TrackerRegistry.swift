import ShoalCore
import ShoalWire

/// What the tracker knows at this moment: who is connected (sessions), which
/// contents exist (manifests), who holds which chunks of them and under which
/// names. A value with no I/O that speaks domain types (``Announcement`` in,
/// ``FileView`` and ``ManifestSlice`` out; ``TrackerMessages`` converts them
/// from and to the wire): the ``Tracker`` actor owns one and feeds it
/// requests; tests feed it directly.
///
/// Everything here lives only as long as a session: when a peer logs out, is
/// replaced by a new login, or is dropped, its holdings go, and a content
/// nobody holds any more is forgotten. Accounts and counters live in the
/// ``TrackerStore``; the registry keeps a copy of a connected peer's counters
/// so `details` needs no database read. A store that keeps the registry too
/// (PostgreSQL) is written each change the registry makes (``AnnounceResult``),
/// and the sessions of the other tracker instances on that store are
/// mirrored here (`TrackerRegistry+Mirror.swift`).
public struct TrackerRegistry: Sendable {
    /// Bounds on what one session may make the tracker remember.
    public struct Limits: Sendable {
        /// Files in one `announce`.
        public var filesPerAnnounce = 10_000
        /// Distinct contents one session may hold.
        public var contentsPerSession = 10_000
        /// Names one session may give one content.
        public var namesPerContent = 16
        /// Total chunks over the contents one session announces (bounds manifest memory: 4 Mi chunks = 128 MiB of digests).
        public var chunksPerSession = 1 << 22
        /// Total chunks over every content the tracker knows, whoever
        /// announced them: 8 Mi chunks = 256 MiB of digests. Per-session
        /// bounds alone let many sessions add up to any size.
        public var chunksOverall = 1 << 23
        /// Sessions one account may have open at once (serving or not).
        public var sessionsPerAccount = 8
        /// Rows in one page of `fileList`.
        public var listPage = 128
        /// Holders in one page of `fileDetails`, and the chunk-map bytes
        /// (base64) one page may carry; a page always has at least one holder.
        public var holdersPage = 64
        public var holderMapBytesPage = 48 * 1024
        /// Contents of one name in one `fileDetails`.
        public var contentsPerName = 16
        /// Chunk indices a holding remembers having gained, to send map changes instead of maps.
        public var deltaChunks = 16_384
        /// Chunks of a manifest carried inside `fileDetails`; a larger one is
        /// asked for in parts with `manifest`.
        public var inlineManifestChunks = ManifestPart.maximumDigests
        public init() {}
    }

    /// A connected, logged-in peer.
    public struct Peer: Sendable, Equatable {
        public var user: String
        public var host: String
        /// Where it serves chunks; 0 if it does not serve.
        public var port: Int
        /// The connection the session belongs to.
        public var connection: UInt64
        public var countDownloads: Int
        public var countFailures: Int
        public var bytesServed: UInt64
        /// The fingerprint of the certificate it serves chunks with over TLS
        /// (64 hex digits), handed to downloaders; nil: it serves in clear.
        public var keyFingerprint: String?
        /// What it holds, by content.
        public var holdings: [ContentID: Holding] = [:]
        /// The tracker instance that owns the session when it is another
        /// one's (mirrored from the shared store); nil: a session of this
        /// tracker. A remote session has no connection here and no request
        /// with its token is taken here.
        public var instance: String?
        /// Whether the session belongs to another tracker instance.
        public var isRemote: Bool { instance != nil }
        var announcedChunks = 0

        public init(user: String, host: String, port: Int, connection: UInt64, countDownloads: Int, countFailures: Int, bytesServed: UInt64) {
            self.user = user
            self.host = host
            self.port = port
            self.connection = connection
            self.countDownloads = countDownloads
            self.countFailures = countFailures
            self.bytesServed = bytesServed
        }
    }

    /// One content held by one session.
    public struct Holding: Sendable, Equatable {
        public var names: Set<FileName>
        public var chunks: ChunkMap
        public var isComplete: Bool { chunks.isComplete }
        /// The map's version: a tracker-wide clock value, new at every change,
        /// so a version from an earlier session never matches a later one.
        public var version: UInt64 = 0
        /// Chunks gained at each version since `deltaFloor`, oldest first: a
        /// downloader that knows the map at a version from `deltaFloor` on
        /// is sent only what came after. Bounded by ``Limits/deltaChunks``.
        var gains: [(version: UInt64, chunks: [Int])] = []
        var deltaFloor: UInt64 = 0

        public init(names: Set<FileName>, chunks: ChunkMap, version: UInt64 = 0) {
            self.names = names
            self.chunks = chunks
            self.version = version
        }

        public static func == (a: Holding, b: Holding) -> Bool {
            a.names == b.names && a.chunks == b.chunks && a.version == b.version
        }

        /// The chunks gained since version `known`, if `known` is a version
        /// this holding had and the log reaches back that far. Only an exact
        /// match counts: versions drawn in blocks by several instances do not
        /// grow across sessions, so a version of an earlier session may fall
        /// inside this one's range without ever having been its own.
        func gained(since known: UInt64) -> [Int]? {
            guard known == deltaFloor || known == version || gains.contains(where: { $0.version == known }) else { return nil }
            return gains.filter { $0.version > known }.flatMap(\.chunks)
        }
    }

    struct Content: Sendable {
        var manifest: Manifest
        var holders: Set<SessionToken> = []
        /// When it was first announced, and by whom (while anyone held it since).
        var since: Double
        var firstSharedBy: String
    }

    public let limits: Limits
    /// Grows with every change to what ``list()`` or ``details(_:name:contentID:withManifest:holdersAfter:knownMaps:)``
    /// return (mirrored changes of other instances included), so callers can cache them (``ListCache``, ``DetailsCache``).
    public internal(set) var generation: UInt64 = 0
    /// The contents and names whose `details` may read differently since the
    /// last ``takeTouched()`` (a holding, a holder's address, counters or
    /// key changed), so a cache of `details` drops only those.
    var touched = Touched()
    var sessions: [SessionToken: Peer] = [:]
    var tokenByUser: [String: SessionToken] = [:]
    var contents: [ContentID: Content] = [:]
    /// Chunks over every content in `contents`.
    public internal(set) var totalChunks = 0
    /// The clock chunk-map versions come from.
    public internal(set) var versions: MapVersionClock
    /// Open sessions by user.
    var sessionsByUser: [String: Set<SessionToken>] = [:]
    /// name -> content -> number of sessions sharing that content under that name.
    private var names: [FileName: [ContentID: Int]] = [:]
    /// content -> the names it is shared under: the other way round.
    private var namesOf: [ContentID: Set<FileName>] = [:]

    /// `versions`: ``MapVersionClock/shared`` when several tracker instances share one store.
    public init(limits: Limits = Limits(), versions: MapVersionClock = .local) {
        self.limits = limits
        self.versions = versions
    }

    // MARK: Sessions

    /// The number of connected (logged-in) peers.
    public var connectedCount: Int { sessions.count }
    /// The number of distinct contents held by someone.
    public var contentCount: Int { contents.count }

    /// The session behind `token`, if it is open.
    public func peer(_ token: SessionToken) -> Peer? { sessions[token] }

    /// The token of `user`'s open session, if any.
    public func token(ofUser user: String) -> SessionToken? { tokenByUser[user] }

    /// Opens a session. If `user` already had a serving one and this one
    /// serves too, the old one is closed and returned (its connection should be
    /// closed: the user logged in elsewhere).
    /// Only serving sessions (port > 0) are unique per user: a tool's session
    /// (port 0, e.g. `shoal list`) never displaces a seeding one.
    /// At most ``Limits/sessionsPerAccount`` sessions per user at once.
    public mutating func login(token: SessionToken, peer: Peer) throws(TrackerError) -> (SessionToken, Peer)? {
        let replacing = peer.port > 0 ? tokenByUser[peer.user] : nil
        guard sessionsByUser[peer.user, default: []].count - (replacing == nil ? 0 : 1) < limits.sessionsPerAccount else {
            throw .notAllowed("\(peer.user) already has \(limits.sessionsPerAccount) sessions open, the most one account may have; log out of one first")
        }
        var replaced: (SessionToken, Peer)?
        if let old = replacing, let oldPeer = logout(old) { replaced = (old, oldPeer) }
        sessions[token] = peer
        sessionsByUser[peer.user, default: []].insert(token)
        if peer.port > 0 { tokenByUser[peer.user] = token }
        return replaced
    }

    /// Records the certificate fingerprint a session serves chunks with.
    public mutating func setKeyFingerprint(_ token: SessionToken, _ fingerprint: String?) {
        guard let peer = sessions[token], peer.keyFingerprint != fingerprint else { return }
        sessions[token]?.keyFingerprint = fingerprint
        touchHoldings(of: token)
        generation &+= 1
    }

    /// What changed for `details` since the last call; starts anew.
    public mutating func takeTouched() -> Touched {
        defer { touched = Touched() }
        return touched
    }

    /// Every content `token` holds may read differently (its holder changed).
    mutating func touchHoldings(of token: SessionToken) {
        guard let holdings = sessions[token]?.holdings else { return }
        touched.contents.formUnion(holdings.keys)
    }

    /// Closes a session and withdraws everything it held.
    @discardableResult
    public mutating func logout(_ token: SessionToken) -> Peer? {
        guard let peer = sessions[token] else { return nil }
        generation &+= 1
        for contentID in peer.holdings.keys { withdraw(token, contentID) }
        sessionsByUser[peer.user]?.remove(token)
        if sessionsByUser[peer.user]?.isEmpty == true { sessionsByUser.removeValue(forKey: peer.user) }
        let removed = sessions.removeValue(forKey: token)
        if tokenByUser[peer.user] == token {
            tokenByUser.removeValue(forKey: peer.user)
            // Another instance's serving session of the same user (two logins
            // racing on two instances) stands in; this instance's own first.
            let serving = (sessionsByUser[peer.user] ?? []).compactMap { other in sessions[other].map { (other, $0) } }.filter { $0.1.port > 0 }
            if let next = serving.min(by: { ($0.1.isRemote ? 1 : 0, $0.0.value) < ($1.1.isRemote ? 1 : 0, $1.0.value) }) {
                tokenByUser[peer.user] = next.0
            }
        }
        return removed
    }

    /// Updates the cached counters of `user`'s sessions (on any instance), if connected.
    ///
    /// Counters only grow (every store adds to them, saturating), so none
    /// goes back: a value read from the store before a report was taken, and
    /// applied after that report's (an instance's change feed or full
    /// read racing a report), changes nothing.
    public mutating func setCounters(user: String, downloads: Int, failures: Int, bytesServed: UInt64) {
        guard let tokens = sessionsByUser[user], !tokens.isEmpty else { return }
        let changed = tokens.contains { token in
            sessions[token].map { $0.countDownloads < downloads || $0.countFailures < failures || $0.bytesServed < bytesServed } ?? false
        }
        guard changed else { return }
        // `details` shows counters: cached replies must go.
        generation &+= 1
        for token in tokens {
            guard var peer = sessions[token] else { continue }
            touchHoldings(of: token)
            peer.countDownloads = max(peer.countDownloads, downloads)
            peer.countFailures = max(peer.countFailures, failures)
            peer.bytesServed = max(peer.bytesServed, bytesServed)
            sessions[token] = peer
        }
    }

    // MARK: Announce

    private enum Change {
        case withdraw(ContentID, FileName)
        case hold(ContentID, FileName, manifest: Manifest?, chunks: ChunkMap?, have: [Int])
    }

    /// What an announce changed in one session: the holdings it now has that
    /// differ from before, the contents it no longer holds, and the contents
    /// the tracker learnt of. What a store persists after an announce.
    public struct AnnounceResult: Sendable {
        /// How many contents the session shares now.
        public var files: Int
        public var changed: [ContentID: Holding]
        public var withdrawn: [ContentID]
        public var newContents: [ContentID]

        public init(files: Int, changed: [ContentID: Holding], withdrawn: [ContentID], newContents: [ContentID]) {
            self.files = files
            self.changed = changed
            self.withdrawn = withdrawn
            self.newContents = newContents
        }
    }

    /// Applies an announcement from `token`'s session at `now` (Unix
    /// seconds). All or nothing: an invalid entry refuses the whole request.
    @discardableResult
    public mutating func announce(_ token: SessionToken, _ request: Announcement, now: Double = 0) throws(TrackerError) -> AnnounceResult {
        guard let peer = sessions[token] else { throw .notLoggedIn }
        guard peer.port > 0 else {
            throw .badRequest("this session does not serve chunks (it logged in with port 0), so it cannot share files; log in with the port you serve on")
        }
        guard request.entries.count <= limits.filesPerAnnounce else {
            throw .tooLarge("an announce may list at most \(limits.filesPerAnnounce) files, this one lists \(request.entries.count); send several")
        }
        // Validate everything first.
        var changes: [Change] = []
        var newManifests: [ContentID: Manifest] = [:]
        for entry in request.entries {
            let file: Announcement.HeldFile
            switch entry {
            case let .withdraw(name, id):
                changes.append(.withdraw(id, name))
                continue
            case let .hold(held):
                file = held
            }
            let name = file.name.value
            var manifest = contents[file.contentID]?.manifest ?? newManifests[file.contentID]
            if manifest == nil {
                guard let given = file.manifest else {
                    throw .badRequest("\(name): the tracker does not know content \(file.contentID.short); include its manifest")
                }
                manifest = given
                newManifests[file.contentID] = given
            }
            let count = manifest!.chunkCount
            var chunks: ChunkMap?
            if let bytes = file.chunkBytes {
                guard let map = ChunkMap(count: count, bytes: bytes) else {
                    throw .badRequest("\(name): 'chunks' is not a valid chunk map for \(count) chunks (base64 of \((count + 7) / 8) bytes)")
                }
                chunks = map
            }
            if let bad = file.have.first(where: { $0 < 0 || $0 >= count }) {
                throw .badRequest("\(name): chunk index \(bad) in 'have' is outside 0..<\(count)")
            }
            changes.append(.hold(file.contentID, file.name, manifest: newManifests[file.contentID], chunks: chunks, have: file.have))
        }
        // Check the session's bounds on the result before touching anything.
        var holdings = request.replace ? [:] : peer.holdings
        var announcedChunks = 0
        for change in changes {
            switch change {
            case let .withdraw(id, name):
                holdings[id]?.names.remove(name)
                if holdings[id]?.names.isEmpty == true { holdings.removeValue(forKey: id) }
            case let .hold(id, name, manifest, chunks, have):
                let count = (contents[id]?.manifest ?? manifest!).chunkCount
                let isNew = holdings[id] == nil
                var holding = holdings[id] ?? Holding(names: [], chunks: ChunkMap(count: count, full: chunks == nil && have.isEmpty))
                if isNew || chunks != nil {
                    if let chunks { holding.chunks = chunks }
                    holding.version = try versions.next()
                    holding.deltaFloor = holding.version
                    holding.gains = []
                }
                let gained = have.filter { holding.chunks.insert($0) }
                if !gained.isEmpty {
                    holding.version = try versions.next()
                    holding.gains.append((holding.version, gained))
                    var logged = holding.gains.reduce(0) { $0 + $1.chunks.count }
                    while logged > limits.deltaChunks, let oldest = holding.gains.first {
                        holding.gains.removeFirst()
                        logged -= oldest.chunks.count
                        holding.deltaFloor = oldest.version
                    }
                }
                holding.names.insert(name)
                guard holding.names.count <= limits.namesPerContent else {
                    throw .tooLarge("a content may be shared under at most \(limits.namesPerContent) names")
                }
                holdings[id] = holding
            }
        }
        guard holdings.count <= limits.contentsPerSession else {
            throw .tooLarge("a peer may share at most \(limits.contentsPerSession) files at once; this announce would make \(holdings.count)")
        }
        for id in holdings.keys { announcedChunks += contents[id]?.manifest.chunkCount ?? newManifests[id]?.chunkCount ?? 0 }
        guard announcedChunks <= limits.chunksPerSession else {
            throw .tooLarge("the files announced add up to \(announcedChunks) chunks, over the \(limits.chunksPerSession) a peer may announce")
        }
        let newChunks = newManifests.values.reduce(0) { $0 + $1.chunkCount }
        guard newChunks == 0 || totalChunks + newChunks <= limits.chunksOverall else {
            throw .tooLarge("the tracker holds manifests of \(totalChunks) chunks, and \(newChunks) more would pass its limit of \(limits.chunksOverall); try again later or ask its operator")
        }
        // Apply.
        for (id, manifest) in newManifests where contents[id] == nil {
            contents[id] = Content(manifest: manifest, since: now, firstSharedBy: peer.user)
            totalChunks += manifest.chunkCount
        }
        for id in peer.holdings.keys where holdings[id] == nil { withdraw(token, id) }
        for (id, holding) in holdings { setHolding(token, id, holding) }
        // Contents validated but held by nobody (e.g. withdrawn in the same request) are not kept.
        for id in newManifests.keys where contents[id]?.holders.isEmpty == true { forget(id) }
        sessions[token]?.announcedChunks = announcedChunks
        generation &+= 1
        return AnnounceResult(files: holdings.count, changed: holdings.filter { peer.holdings[$0.key] != $0.value },
                              withdrawn: peer.holdings.keys.filter { holdings[$0] == nil },
                              newContents: newManifests.keys.filter { contents[$0] != nil })
    }

    mutating func setHolding(_ token: SessionToken, _ id: ContentID, _ holding: Holding) {
        let old = sessions[token]?.holdings[id]
        touched.contents.insert(id)
        touched.names.formUnion(holding.names)
        if let old { touched.names.formUnion(old.names) }
        for name in old?.names.subtracting(holding.names) ?? [] { unindex(name, id) }
        for name in holding.names.subtracting(old?.names ?? []) {
            names[name, default: [:]][id, default: 0] += 1
            namesOf[id, default: []].insert(name)
        }
        sessions[token]?.holdings[id] = holding
        contents[id]?.holders.insert(token)
    }

    mutating func withdraw(_ token: SessionToken, _ id: ContentID) {
        guard let holding = sessions[token]?.holdings.removeValue(forKey: id) else { return }
        touched.contents.insert(id)
        touched.names.formUnion(holding.names)
        for name in holding.names { unindex(name, id) }
        contents[id]?.holders.remove(token)
        if contents[id]?.holders.isEmpty == true { forget(id) }
    }

    mutating func forget(_ id: ContentID) {
        guard let content = contents.removeValue(forKey: id) else { return }
        touched.contents.insert(id)
        totalChunks -= content.manifest.chunkCount
    }

    private mutating func unindex(_ name: FileName, _ id: ContentID) {
        guard let count = names[name]?[id] else { return }
        if count <= 1 {
            names[name]?.removeValue(forKey: id)
            if names[name]?.isEmpty == true { names.removeValue(forKey: name) }
            namesOf[id]?.remove(name)
            if namesOf[id]?.isEmpty == true { namesOf.removeValue(forKey: id) }
        } else {
            names[name]?[id] = count - 1
        }
    }

    // MARK: Queries

    /// The available files: one row per (name, content), sorted by name then content id.
    public func list() -> [ListedFile] {
        var rows: [ListedFile] = []
        for (name, ids) in names {
            for id in ids.keys { if let row = listRow(name, id) { rows.append(row) } }
        }
        return rows.sorted(by: ListCache.precedes)
    }

    /// The rows of ``list()`` that show a touched name or content, as they
    /// are now (in no order): with them, a kept list is brought up to date
    /// by the change itself (``ListCache/update(touched:rows:)``).
    public func listRows(touching touched: Touched) -> [ListedFile] {
        var pairs = Set<NamedContent>()
        for name in touched.names {
            for id in names[name]?.keys ?? [:].keys { pairs.insert(NamedContent(name: name, id: id)) }
        }
        for id in touched.contents {
            for name in namesOf[id] ?? [] { pairs.insert(NamedContent(name: name, id: id)) }
        }
        return pairs.compactMap { listRow($0.name, $0.id) }
    }

    private struct NamedContent: Hashable {
        var name: FileName
        var id: ContentID
    }

    /// The row of `id` shared under `name`.
    private func listRow(_ name: FileName, _ id: ContentID) -> ListedFile? {
        guard let content = contents[id] else { return nil }
        let complete = content.holders.filter { sessions[$0]?.holdings[id]?.isComplete == true }.count
        return ListedFile(name: name.value, contentID: id, size: content.manifest.fileSize,
                          holders: complete, partialHolders: content.holders.count - complete)
    }

    /// Every content shared under `name` (or the content `contentID`), oldest
    /// first, at most ``Limits/contentsPerName`` of them, each with a page of
    /// its holders (by user name, after `holdersAfter`). The manifest comes
    /// inline only for a single content of at most
    /// ``Limits/inlineManifestChunks`` chunks; otherwise ``manifestPart(_:contentID:from:)``.
    /// Nothing here orders contents by how many hold them: free accounts
    /// could inflate that. The asker's own account is never listed, from any
    /// of its sessions: nobody is sent to itself (or can vouch for itself).
    ///
    /// `knownMaps` gives the chunk-map version the asker has of some holders:
    /// those come with the chunks gained since (`gained`), not their maps,
    /// when the tracker still remembers that far back.
    public func details(_ token: SessionToken, name: String?, contentID: ContentID?, withManifest: Bool = true,
                        holdersAfter: String? = nil, knownMaps: [String: UInt64]? = nil) throws(TrackerError) -> FileView {
        guard let asker = sessions[token]?.user else { throw .notLoggedIn }
        var ids: [ContentID]
        var displayName: [ContentID: String] = [:]
        switch (name, contentID) {
        case let (nil, id?):
            guard contents[id] != nil else { throw .notFound("content \(id.short)") }
            ids = [id]
        case let (name?, id):
            let fileName: FileName
            do { fileName = try FileName(name) } catch { throw .invalidName(error) }
            ids = Array(names[fileName]?.keys ?? [:].keys)
            if let id { ids = ids.filter { $0 == id } }
            guard !ids.isEmpty else { throw .notFound("a file named \(name.debugDescription)") }
            for id in ids { displayName[id] = name }
        case (nil, nil):
            throw .badRequest("details needs a name or a content id")
        }
        ids.sort { a, b in
            let (ca, cb) = (contents[a]!, contents[b]!)
            return ca.since != cb.since ? ca.since < cb.since : a < b
        }
        let shown = ids.prefix(limits.contentsPerName)
        var result: [FileView.Content] = []
        for id in shown {
            let content = contents[id]!
            var page: [FileView.Holder] = []
            var mapBytes = 0
            var more = 0
            var complete = 0
            var candidates: [(String, SessionToken)] = []
            for holderToken in content.holders {
                guard let peer = sessions[holderToken], let holding = peer.holdings[id] else { continue }
                if holding.isComplete { complete += 1 }
                guard holderToken != token, peer.user != asker else { continue }
                if let holdersAfter, !(holdersAfter.utf8.lexicographicallyPrecedes(peer.user.utf8)) { continue }
                candidates.append((peer.user, holderToken))
            }
            candidates.sort { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) || ($0.0 == $1.0 && $0.1.value < $1.1.value) }
            for (index, (_, holderToken)) in candidates.enumerated() {
                let peer = sessions[holderToken]!
                let holding = peer.holdings[id]!
                let gained = holding.isComplete ? nil : knownMaps?[peer.user].flatMap { holding.gained(since: $0) }
                let chunks = holding.isComplete || gained != nil ? nil : holding.chunks
                // What the holder adds to the reply: its map in base64, or about 7 bytes per gained index.
                let bytes = chunks?.base64Length ?? (gained?.count ?? 0) * 7
                if !page.isEmpty, page.count >= limits.holdersPage || mapBytes + bytes > limits.holderMapBytesPage,
                   page.last!.user != peer.user {
                    more = candidates.count - index
                    break
                }
                mapBytes += bytes
                page.append(FileView.Holder(user: peer.user, host: peer.host, port: peer.port, countDownloads: peer.countDownloads,
                                            countFailures: peer.countFailures, bytesServed: peer.bytesServed, chunks: chunks,
                                            mapVersion: holding.isComplete ? nil : holding.version,
                                            gained: holding.isComplete ? nil : gained, keyFingerprint: peer.keyFingerprint))
            }
            let shownName = displayName[id] ?? sessions[content.holders.first!]?.holdings[id]?.names.min()?.value ?? id.short
            let inline = withManifest && ids.count == 1 && content.manifest.chunkCount <= limits.inlineManifestChunks
            result.append(FileView.Content(name: shownName, contentID: id, manifest: inline ? content.manifest : nil,
                                           holders: page, moreHolders: more, size: content.manifest.fileSize,
                                           chunkCount: content.manifest.chunkCount, completeHolders: complete,
                                           partialHolders: content.holders.count - complete,
                                           firstSharedBy: content.firstSharedBy, since: content.since))
        }
        return FileView(contents: result, moreContents: ids.count - shown.count)
    }

    /// Digests of `contentID`'s manifest from chunk `from` on, at most
    /// ``ManifestPart/maximumDigests`` of them.
    public func manifestPart(_ token: SessionToken, contentID: ContentID, from: Int) throws(TrackerError) -> ManifestSlice {
        guard sessions[token] != nil else { throw .notLoggedIn }
        guard let manifest = contents[contentID]?.manifest else { throw .notFound("content \(contentID.short)") }
        guard from >= 0 && from < max(manifest.chunkCount, 1) else {
            throw .badRequest("'from' \(from) is outside the manifest's \(manifest.chunkCount) chunks")
        }
        let end = min(manifest.chunkCount, from + ManifestPart.maximumDigests)
        return ManifestSlice(contentID: contentID, fileSize: manifest.fileSize, chunkSize: manifest.chunkSize, from: from,
                             digests: manifest.digests[from..<end])
    }

    /// The content `id` as a store keeps it, if someone holds it.
    public func storedContent(_ id: ContentID) -> StoredContent? {
        contents[id].map { StoredContent(manifest: $0.manifest, firstSharedBy: $0.firstSharedBy, since: $0.since) }
    }

    /// The users holding the content `id` (from any session).
    public func holderUsers(of id: ContentID) -> Set<String> {
        Set(contents[id]?.holders.compactMap { sessions[$0]?.user } ?? [])
    }

    /// The size of the content `id`, if someone holds it.
    public func fileSize(of id: ContentID) -> UInt64? { contents[id]?.manifest.fileSize }

    /// The operator's view of `rows` (a page of ``list()``): each (name,
    /// content) with the users holding it, at most `namesPerFile` of them.
    public func fileStatus(_ rows: some Collection<ListedFile>, namesPerFile: Int = 32) -> [TrackerStatus.File] {
        rows.map { row in
            let holders = contents[row.contentID]?.holders.compactMap { sessions[$0] } ?? []
            let sharing = holders.filter { $0.holdings[row.contentID]?.names.contains(where: { $0.value == row.name }) == true }
            let complete = sharing.filter { $0.holdings[row.contentID]!.isComplete }.map(\.user).sorted()
            let partial = sharing.filter { !$0.holdings[row.contentID]!.isComplete }.map(\.user).sorted()
            let left = max(0, complete.count - namesPerFile) + max(0, partial.count - namesPerFile)
            return TrackerStatus.File(name: row.name, contentID: row.contentID, size: row.size,
                                      holders: Array(complete.prefix(namesPerFile)), partialHolders: Array(partial.prefix(namesPerFile)),
                                      moreHolders: left > 0 ? left : nil)
        }
    }

    /// Connected peers, by user name.
    public var connectedPeers: [Peer] { sessions.values.sorted { $0.user < $1.user } }
}

extension TrackerRegistry {
    /// Contents and file names whose `details` replies may have changed.
    public struct Touched: Sendable, Equatable {
        public var contents: Set<ContentID> = []
        public var names: Set<FileName> = []
        public var isEmpty: Bool { contents.isEmpty && names.isEmpty }

        public init(contents: Set<ContentID> = [], names: Set<FileName> = []) {
            self.contents = contents
            self.names = names
        }
    }
}
