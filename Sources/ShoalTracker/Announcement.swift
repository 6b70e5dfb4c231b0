import ShoalCore

/// What a peer says it shares, as the registry takes it: names already
/// checked, manifests already validated against their content ids, chunk
/// maps as bytes. Made from an `announce` message by
/// ``Announcement/init(_:)`` (the one place where its text is parsed); the
/// registry checks the rest (whether a manifest is needed, chunk indices and
/// maps against the manifest's chunk count, the limits).
public struct Announcement: Sendable, Equatable {
    /// One file of the announcement.
    public enum Entry: Sendable, Equatable {
        /// Holds (part of) `contentID` under `name`.
        case hold(HeldFile)
        /// Stops sharing `contentID` under `name`.
        case withdraw(name: FileName, contentID: ContentID)

        public var name: FileName {
            switch self {
            case let .hold(file): file.name
            case let .withdraw(name, _): name
            }
        }
    }

    /// A file the peer holds, wholly or in part.
    public struct HeldFile: Sendable, Equatable {
        public var name: FileName
        public var contentID: ContentID
        /// The manifest, validated: required the first time the tracker sees the content.
        public var manifest: Manifest?
        /// The chunks held, in ``ChunkMap/bytes`` layout, to be read as a
        /// ``ChunkMap`` of the manifest's chunk count; nil: as before for a
        /// file already held, else every chunk.
        public var chunkBytes: [UInt8]?
        /// Chunk indices newly held, added to what was announced before.
        public var have: [Int]

        public init(name: FileName, contentID: ContentID, manifest: Manifest? = nil, chunkBytes: [UInt8]? = nil, have: [Int] = []) {
            self.name = name
            self.contentID = contentID
            self.manifest = manifest
            self.chunkBytes = chunkBytes
            self.have = have
        }

        /// The same, with the chunks held given as a map.
        public init(name: FileName, contentID: ContentID, manifest: Manifest? = nil, chunks: ChunkMap, have: [Int] = []) {
            self.init(name: name, contentID: contentID, manifest: manifest, chunkBytes: chunks.bytes, have: have)
        }
    }

    /// True: the entries replace everything the session shared before;
    /// false: each entry updates its file.
    public var replace: Bool
    public var entries: [Entry]

    public init(replace: Bool, entries: [Entry]) {
        self.replace = replace
        self.entries = entries
    }
}
