import ShoalCore

/// What the registry tells about the contents under one name (or one content):
/// the domain form of a `fileDetails` reply, before the tracker adds download
/// ids and turns it into a message (``FileDetails/init(_:)``).
public struct FileView: Sendable, Equatable {
    /// A holder as listed to a downloader.
    public struct Holder: Sendable, Equatable {
        public var user: String
        public var host: String
        public var port: Int
        public var countDownloads: Int
        public var countFailures: Int
        public var bytesServed: UInt64
        /// The holder's chunk map; nil when it holds every chunk or when
        /// ``gained`` is given instead.
        public var chunks: ChunkMap?
        /// A partial holder's map version (nil for a complete one).
        public var mapVersion: UInt64?
        /// The chunks gained since the version the asker knows.
        public var gained: [Int]?
        /// The fingerprint of the certificate it serves chunks with; nil: in clear.
        public var keyFingerprint: String?
    }

    /// One content shared under the name asked for.
    public struct Content: Sendable, Equatable {
        public var name: String
        public var contentID: ContentID
        /// The manifest, when small enough and alone (see ``TrackerRegistry/details(_:name:contentID:withManifest:holdersAfter:knownMaps:)``).
        public var manifest: Manifest?
        /// A page of holders, by user name.
        public var holders: [Holder]
        /// Holders after this page.
        public var moreHolders: Int
        public var size: UInt64
        public var chunkCount: Int
        public var completeHolders: Int
        public var partialHolders: Int
        public var firstSharedBy: String
        public var since: Double
    }

    public var contents: [Content]
    /// Contents of the name left out (past ``TrackerRegistry/Limits/contentsPerName``).
    public var moreContents: Int
}

/// Digests `from ..< from + digests.count` of a content's manifest, and the
/// sizes the whole manifest hashes with: the domain form of `manifestPart`.
public struct ManifestSlice: Sendable, Equatable {
    public var contentID: ContentID
    public var fileSize: UInt64
    public var chunkSize: UInt32
    public var from: Int
    public var digests: ArraySlice<ChunkDigest>
}
