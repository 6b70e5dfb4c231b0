import ShoalCore

/// `status`: the operator's view of a running tracker. It needs no session,
/// but the operator token the tracker wrote beside its database.
public struct StatusRequest: ControlMessage {
    public static let messageType = MessageType.status
    /// The operator token (64 hex digits) from the tracker's token file.
    public var token: String?
    /// A later page: of peers (`peersAfter`), or of files (`filesAfter`);
    /// with neither, the first page of each.
    public var peersAfter: String?
    public var filesAfter: ListCursor?
    public init(token: String? = nil, peersAfter: String? = nil, filesAfter: ListCursor? = nil) {
        self.token = token
        self.peersAfter = peersAfter
        self.filesAfter = filesAfter
    }
}

/// `trackerStatus`: counts, files and peers.
public struct TrackerStatus: ControlMessage {
    public static let messageType = MessageType.trackerStatus

    public struct File: Codable, Sendable, Equatable {
        public var name: String
        public var contentID: ContentID
        public var size: UInt64
        /// Up to 32 names of each kind; `moreHolders` counts those left out.
        public var holders: [String]
        public var partialHolders: [String]
        public var moreHolders: Int?
        public init(name: String, contentID: ContentID, size: UInt64, holders: [String], partialHolders: [String], moreHolders: Int? = nil) {
            self.name = name
            self.contentID = contentID
            self.size = size
            self.holders = holders
            self.partialHolders = partialHolders
            self.moreHolders = moreHolders
        }
    }

    public struct Peer: Codable, Sendable, Equatable {
        public var user: String
        public var connected: Bool
        public var host: String?
        public var port: Int?
        public var countDownloads: Int
        public var countFailures: Int
        public var bytesServed: UInt64
        public init(user: String, connected: Bool, host: String?, port: Int?, countDownloads: Int, countFailures: Int, bytesServed: UInt64) {
            self.user = user
            self.connected = connected
            self.host = host
            self.port = port
            self.countDownloads = countDownloads
            self.countFailures = countFailures
            self.bytesServed = bytesServed
        }
    }

    public var registered: Int
    public var connected: Int
    /// A page of files (by name, then content id) and a page of accounts
    /// (by name); `nextFiles` and `nextPeers` are the cursors of the pages
    /// after, when there are more.
    public var files: [File]
    public var peers: [Peer]
    public var nextFiles: ListCursor?
    public var nextPeers: String?
    public init(registered: Int, connected: Int, files: [File], peers: [Peer], nextFiles: ListCursor? = nil, nextPeers: String? = nil) {
        self.registered = registered
        self.connected = connected
        self.files = files
        self.peers = peers
        self.nextFiles = nextFiles
        self.nextPeers = nextPeers
    }
}
