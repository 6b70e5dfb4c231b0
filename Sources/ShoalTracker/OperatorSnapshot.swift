import Foundation
import ShoalCore
import ShoalWire

/// What the operator's web page and JSON API show (``Tracker/operatorSnapshot(_:)``):
/// accounts with their counters and whether they are connected, and the
/// shared files with their holders and a chunk-availability bar. A value,
/// encoded as JSON as it is.
///
/// Bounded like `status`: one page of at most ``Request/peerPage`` accounts
/// (by name) and one of at most ``Request/filePage`` files (by name, then
/// content), each file listing at most ``Request/holdersPerFile`` holders and
/// at most ``ChunkAvailability/defaultMaximumCells`` availability cells;
/// `nextPeers` and `nextFiles` are the cursors of the next pages.
///
/// A peer's `score` is ``PeerScore/reputation`` from the tracker's counters:
/// the factor (1 for a clean record, up to 5) by which every downloader
/// multiplies the time it measures to get a chunk from that peer. The rest
/// of a downloader's score (round trips, throughput) is measured by each
/// downloader and never reaches the tracker. Lower is better.
public struct OperatorSnapshot: Codable, Sendable, Equatable {
    /// Which pages to show.
    public struct Request: Sendable, Equatable {
        /// Accounts after this name (nil: from the first).
        public var peersAfter: String?
        /// Files after this cursor (nil: from the first).
        public var filesAfter: ListCursor?
        public var peerPage = 256
        public var filePage = 32
        public var holdersPerFile = 32

        public init(peersAfter: String? = nil, filesAfter: ListCursor? = nil) {
            self.peersAfter = peersAfter
            self.filesAfter = filesAfter
        }
    }

    /// An account, and its session when it is connected.
    public struct Peer: Codable, Sendable, Equatable {
        public var user: String
        public var connected: Bool
        /// Where it serves chunks, when connected (port 0: a tool's session, serving nothing).
        public var host: String?
        public var port: Int?
        /// Contents its serving session shares, when connected.
        public var files: Int?
        public var countDownloads: Int
        public var countFailures: Int
        public var bytesServed: UInt64
        /// ``PeerScore/reputation`` from the counters: 1 ... 5, lower is better.
        public var score: Double
    }

    /// One connected peer holding a file.
    public struct Holder: Codable, Sendable, Equatable {
        public var user: String
        public var complete: Bool
        /// Chunks it holds.
        public var chunks: Int

        public init(user: String, complete: Bool, chunks: Int) {
            self.user = user
            self.complete = complete
            self.chunks = chunks
        }
    }

    /// A file as `list` shows it (one name of one content), with who holds it.
    public struct File: Codable, Sendable, Equatable {
        public var name: String
        public var contentID: ContentID
        public var size: UInt64
        public var chunkCount: Int
        public var completeHolders: Int
        public var partialHolders: Int
        /// At most ``Request/holdersPerFile``: complete holders first, then by name.
        public var holders: [Holder]
        /// Holders left out of ``holders``.
        public var moreHolders: Int?
        /// How many holders of the content (under any name) have each part of it.
        public var availability: ChunkAvailability
    }

    /// When it was made (Unix seconds).
    public var at: Double
    /// Registered accounts.
    public var registered: Int
    /// Open sessions.
    public var connected: Int
    /// Rows of the file list (one per name and content).
    public var fileCount: Int
    public var peers: [Peer]
    public var files: [File]
    /// The account to page on from, if there are more.
    public var nextPeers: String?
    /// The file to page on from, if there are more.
    public var nextFiles: ListCursor?

    /// Builds the pages `request` asks for from what the tracker holds:
    /// `accounts` (a page of the store's, already after `request.peersAfter`,
    /// at most one more than ``Request/peerPage``), the connected `sessions`,
    /// and `rows`, every row of the file list, sorted.
    public init(request: Request, at: Double, registered: Int, accounts: [AccountCounters],
                sessions: [TrackerRegistry.Peer], rows: [ListedFile]) {
        self.at = at
        self.registered = registered
        self.connected = sessions.count
        self.fileCount = rows.count
        // A user's serving session speaks for it; a tool's session (port 0) only if it has no other.
        var byUser: [String: TrackerRegistry.Peer] = [:]
        for session in sessions where byUser[session.user] == nil || byUser[session.user]!.port == 0 {
            byUser[session.user] = session
        }
        let shown = accounts.prefix(request.peerPage)
        peers = shown.map { account in
            let session = byUser[account.user]
            return Peer(user: account.user, connected: session != nil, host: session?.host, port: session?.port,
                        files: session?.holdings.count, countDownloads: account.countDownloads,
                        countFailures: account.countFailures, bytesServed: account.bytesServed,
                        score: PeerScore(responseTime: 1, countDownloads: account.countDownloads,
                                         countFailures: account.countFailures).reputation)
        }
        nextPeers = accounts.count > request.peerPage ? shown.last?.user : nil

        let start = ListCache.firstRow(after: request.filesAfter, in: rows)
        let end = min(rows.count, start + request.filePage)
        let page = rows[start..<end]
        let wanted = Set(page.map(\.contentID))
        var holding: [ContentID: [(user: String, holding: TrackerRegistry.Holding)]] = [:]
        for session in sessions {
            for (id, held) in session.holdings where wanted.contains(id) {
                holding[id, default: []].append((session.user, held))
            }
        }
        files = page.map { row in
            let all = holding[row.contentID] ?? []
            let named = all.filter { $0.holding.names.contains { $0.value == row.name } }
                .sorted { a, b in
                    a.holding.isComplete != b.holding.isComplete ? a.holding.isComplete
                        : a.user.utf8.lexicographicallyPrecedes(b.user.utf8)
                }
            let complete = named.filter(\.holding.isComplete).count
            let chunkCount = all.first?.holding.chunks.count ?? 0
            let availability = ChunkAvailability(
                chunkCount: chunkCount, completeHolders: all.filter(\.holding.isComplete).count,
                partialMaps: all.filter { !$0.holding.isComplete }.map(\.holding.chunks))
            return File(name: row.name, contentID: row.contentID, size: row.size, chunkCount: chunkCount,
                        completeHolders: complete, partialHolders: named.count - complete,
                        holders: named.prefix(request.holdersPerFile).map {
                            Holder(user: $0.user, complete: $0.holding.isComplete, chunks: $0.holding.chunks.heldCount)
                        },
                        moreHolders: named.count > request.holdersPerFile ? named.count - request.holdersPerFile : nil,
                        availability: availability)
        }
        nextFiles = end < rows.count ? page.last.map { ListCursor(name: $0.name, contentID: $0.contentID) } : nil
    }
}
