import Foundation
import ShoalCore
import ShoalWire

/// What the tracker knows at this moment: who is connected (sessions), which
/// contents exist (manifests), who holds which chunks of them and under which
/// names. A value with no I/O: the ``Tracker`` actor owns one and feeds it
/// requests; tests feed it directly.
///
/// Everything here lives only as long as a session: when a peer logs out, is
/// replaced by a new login, or is dropped, its holdings go, and a content
/// nobody holds any more is forgotten. Accounts and counters live in the
/// ``AccountStore``; the registry keeps a copy of a connected peer's counters
/// so `details` needs no database read.
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
        /// Holders this session was given in `details`, by content: the only
        /// ones it may `report` about (each once).
        var given: [ContentID: Set<String>] = [:]
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
    }

    struct Content: Sendable {
        var manifest: Manifest
        var holders: Set<SessionToken> = []
    }

    public let limits: Limits
    /// Grows with every change to what ``list()`` returns, so callers can cache it.
    public private(set) var generation: UInt64 = 0
    private(set) var sessions: [SessionToken: Peer] = [:]
    private var tokenByUser: [String: SessionToken] = [:]
    private var contents: [ContentID: Content] = [:]
    /// name -> content -> number of sessions sharing that content under that name.
    private var names: [FileName: [ContentID: Int]] = [:]

    public init(limits: Limits = Limits()) {
        self.limits = limits
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
    public mutating func login(token: SessionToken, peer: Peer) -> (SessionToken, Peer)? {
        sessions[token] = peer
        guard peer.port > 0 else { return nil }
        var replaced: (SessionToken, Peer)?
        if let old = tokenByUser[peer.user], let oldPeer = logout(old) { replaced = (old, oldPeer) }
        tokenByUser[peer.user] = token
        return replaced
    }

    /// Records the certificate fingerprint a session serves chunks with.
    public mutating func setKeyFingerprint(_ token: SessionToken, _ fingerprint: String?) {
        sessions[token]?.keyFingerprint = fingerprint
    }

    /// Closes a session and withdraws everything it held.
    @discardableResult
    public mutating func logout(_ token: SessionToken) -> Peer? {
        guard let peer = sessions[token] else { return nil }
        generation &+= 1
        for contentID in peer.holdings.keys { withdraw(token, contentID) }
        if tokenByUser[peer.user] == token { tokenByUser.removeValue(forKey: peer.user) }
        return sessions.removeValue(forKey: token)
    }

    /// Updates the cached counters of `user`'s session, if connected.
    public mutating func setCounters(user: String, downloads: Int, failures: Int, bytesServed: UInt64) {
        guard let token = tokenByUser[user] else { return }
        sessions[token]?.countDownloads = downloads
        sessions[token]?.countFailures = failures
        sessions[token]?.bytesServed = bytesServed
    }

    // MARK: Announce

    private enum Change {
        case withdraw(ContentID, FileName)
        case hold(ContentID, FileName, manifest: Manifest?, chunks: ChunkMap?, have: [Int])
    }

    /// Applies an `announce` from `token`'s session; returns how many contents
    /// it now shares. All or nothing: an invalid entry refuses the whole request.
    public mutating func announce(_ token: SessionToken, _ request: Announce) throws(TrackerError) -> Int {
        guard let peer = sessions[token] else { throw .notLoggedIn }
        guard peer.port > 0 else {
            throw .badRequest("this session does not serve chunks (it logged in with port 0), so it cannot share files; log in with the port you serve on")
        }
        guard request.files.count <= limits.filesPerAnnounce else {
            throw .tooLarge("an announce may list at most \(limits.filesPerAnnounce) files, this one lists \(request.files.count); send several")
        }
        // Validate everything first.
        var changes: [Change] = []
        var newManifests: [ContentID: Manifest] = [:]
        for entry in request.files {
            let name: FileName
            do { name = try FileName(entry.name) } catch { throw .invalidName(error) }
            if entry.withdrawn == true {
                changes.append(.withdraw(entry.contentID, name))
                continue
            }
            var manifest = contents[entry.contentID]?.manifest ?? newManifests[entry.contentID]
            if manifest == nil {
                guard let payload = entry.manifest else {
                    throw .badRequest("\(entry.name): the tracker does not know content \(entry.contentID.short); include its manifest")
                }
                do {
                    manifest = try payload.manifest(expecting: entry.contentID)
                } catch {
                    throw .badRequest("\(entry.name): \(error)")
                }
                newManifests[entry.contentID] = manifest
            }
            let count = manifest!.chunkCount
            var chunks: ChunkMap?
            if let encoded = entry.chunks {
                guard let data = Data(base64Encoded: encoded), let map = ChunkMap(count: count, bytes: data) else {
                    throw .badRequest("\(entry.name): 'chunks' is not a valid chunk map for \(count) chunks (base64 of \((count + 7) / 8) bytes)")
                }
                chunks = map
            }
            let have = entry.have ?? []
            if let bad = have.first(where: { $0 < 0 || $0 >= count }) {
                throw .badRequest("\(entry.name): chunk index \(bad) in 'have' is outside 0..<\(count)")
            }
            changes.append(.hold(entry.contentID, name, manifest: newManifests[entry.contentID], chunks: chunks, have: have))
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
                var holding = holdings[id] ?? Holding(names: [], chunks: ChunkMap(count: count, full: chunks == nil && have.isEmpty))
                if let chunks { holding.chunks = chunks }
                for index in have { holding.chunks.insert(index) }
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
        // Apply.
        for (id, manifest) in newManifests where contents[id] == nil { contents[id] = Content(manifest: manifest) }
        for id in peer.holdings.keys where holdings[id] == nil { withdraw(token, id) }
        for (id, holding) in holdings { setHolding(token, id, holding) }
        // Contents validated but held by nobody (e.g. withdrawn in the same request) are not kept.
        for id in newManifests.keys where contents[id]?.holders.isEmpty == true { contents.removeValue(forKey: id) }
        sessions[token]?.announcedChunks = announcedChunks
        generation &+= 1
        return holdings.count
    }

    private mutating func setHolding(_ token: SessionToken, _ id: ContentID, _ holding: Holding) {
        let old = sessions[token]?.holdings[id]
        for name in old?.names.subtracting(holding.names) ?? [] { unindex(name, id) }
        for name in holding.names.subtracting(old?.names ?? []) { names[name, default: [:]][id, default: 0] += 1 }
        sessions[token]?.holdings[id] = holding
        contents[id]?.holders.insert(token)
    }

    private mutating func withdraw(_ token: SessionToken, _ id: ContentID) {
        guard let holding = sessions[token]?.holdings.removeValue(forKey: id) else { return }
        for name in holding.names { unindex(name, id) }
        contents[id]?.holders.remove(token)
        if contents[id]?.holders.isEmpty == true { contents.removeValue(forKey: id) }
    }

    private mutating func unindex(_ name: FileName, _ id: ContentID) {
        guard let count = names[name]?[id] else { return }
        if count <= 1 {
            names[name]?.removeValue(forKey: id)
            if names[name]?.isEmpty == true { names.removeValue(forKey: name) }
        } else {
            names[name]?[id] = count - 1
        }
    }

    // MARK: Queries

    /// The available files: one row per (name, content), sorted by name then content id.
    public func list() -> [ListedFile] {
        var rows: [ListedFile] = []
        for (name, ids) in names {
            for id in ids.keys {
                guard let content = contents[id] else { continue }
                let complete = content.holders.filter { sessions[$0]?.holdings[id]?.isComplete == true }.count
                rows.append(ListedFile(name: name.value, contentID: id, size: content.manifest.fileSize,
                                       holders: complete, partialHolders: content.holders.count - complete))
            }
        }
        return rows.sorted { ($0.name.utf8.lexicographicallyPrecedes($1.name.utf8)) || ($0.name == $1.name && $0.contentID < $1.contentID) }
    }

    /// Every content shared under `name` (or the content `contentID`), each
    /// with its manifest and holders. Contents come in the order a download by
    /// name picks from: most complete holders, then most holders, then lowest
    /// content id. Records the holders handed out, for ``authorizeReport``.
    public mutating func details(_ token: SessionToken, name: String?, contentID: ContentID?, withManifest: Bool = true) throws(TrackerError) -> [FileDetail] {
        guard sessions[token] != nil else { throw .notLoggedIn }
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
        let ranked = ids.map { id -> (ContentID, Int, Int) in
            let holders = contents[id]!.holders
            let complete = holders.filter { sessions[$0]?.holdings[id]?.isComplete == true }.count
            return (id, complete, holders.count)
        }.sorted { a, b in
            if a.1 != b.1 { return a.1 > b.1 }
            if a.2 != b.2 { return a.2 > b.2 }
            return a.0 < b.0
        }
        var result: [FileDetail] = []
        for (id, _, _) in ranked {
            let content = contents[id]!
            var holders: [(Holder, Int)] = []
            for holderToken in content.holders where holderToken != token {
                guard let peer = sessions[holderToken], let holding = peer.holdings[id] else { continue }
                let chunks = holding.isComplete ? nil : Data(holding.chunks.bytes).base64EncodedString()
                holders.append((Holder(user: peer.user, host: peer.host, port: peer.port, countDownloads: peer.countDownloads,
                                       countFailures: peer.countFailures, bytesServed: peer.bytesServed, chunks: chunks,
                                       keyFingerprint: peer.keyFingerprint),
                                holding.chunks.heldCount))
            }
            holders.sort { a, b in a.1 != b.1 ? a.1 > b.1 : a.0.user < b.0.user }
            sessions[token]!.given[id, default: []].formUnion(holders.map(\.0.user))
            let shownName = displayName[id] ?? sessions[content.holders.first!]?.holdings[id]?.names.min()?.value ?? id.short
            result.append(FileDetail(name: shownName, contentID: id, manifest: withManifest ? ManifestPayload(content.manifest) : nil,
                                     holders: holders.map(\.0)))
        }
        return result
    }

    /// Checks that `token`'s session was given `holder` for `contentID` and has
    /// not reported about it since; consumes that permission.
    public mutating func authorizeReport(_ token: SessionToken, contentID: ContentID, holder: String) throws(TrackerError) {
        guard let peer = sessions[token] else { throw .notLoggedIn }
        guard peer.given[contentID]?.contains(holder) == true else {
            throw .notAllowed("you may report only about a holder the tracker gave you for that file, once per details request; \(holder.debugDescription) was not given to you for \(contentID.short)")
        }
        sessions[token]!.given[contentID]!.remove(holder)
        if sessions[token]!.given[contentID]!.isEmpty { sessions[token]!.given.removeValue(forKey: contentID) }
    }

    /// The operator's view of files: each (name, content) with the users holding it.
    public func fileStatus() -> [TrackerStatus.File] {
        list().map { row in
            let holders = contents[row.contentID]?.holders.compactMap { sessions[$0] } ?? []
            let sharing = holders.filter { $0.holdings[row.contentID]?.names.contains(where: { $0.value == row.name }) == true }
            return TrackerStatus.File(
                name: row.name, contentID: row.contentID, size: row.size,
                holders: sharing.filter { $0.holdings[row.contentID]!.isComplete }.map(\.user).sorted(),
                partialHolders: sharing.filter { !$0.holdings[row.contentID]!.isComplete }.map(\.user).sorted())
        }
    }

    /// Connected peers, by user name.
    public var connectedPeers: [Peer] { sessions.values.sorted { $0.user < $1.user } }
}
