import NIOCore
import ShoalCore

/// One file in an `announce`.
public struct AnnouncedFile: Codable, Sendable, Equatable {
    /// The name it is shared under (see ``FileName`` for the rules).
    public var name: String
    public var contentID: ContentID
    /// Required the first time a peer announces this content in a session.
    public var manifest: ManifestPayload?
    /// Base64 of a ``ChunkMap`` of the chunks held; absent means all of them.
    public var chunks: String?
    /// Chunk indices newly held, added to what was announced before.
    public var have: [Int]?
    /// True to stop sharing this file.
    public var withdrawn: Bool?

    public init(name: String, contentID: ContentID, manifest: ManifestPayload? = nil, chunks: String? = nil, have: [Int]? = nil, withdrawn: Bool? = nil) {
        self.name = name
        self.contentID = contentID
        self.manifest = manifest
        self.chunks = chunks
        self.have = have
        self.withdrawn = withdrawn
    }
}

/// `announce`: what the peer shares. With `replace` true the list replaces
/// everything announced before; otherwise each entry updates its file.
/// Answered by `announced` or an error (`invalid_name`, `too_large`, `bad_request`).
public struct Announce: ControlMessage {
    public static let messageType = MessageType.announce
    public var token: String
    public var replace: Bool
    public var files: [AnnouncedFile]
    public init(token: String, replace: Bool, files: [AnnouncedFile]) {
        self.token = token
        self.replace = replace
        self.files = files
    }
}

/// `announced`: how many files the peer now shares.
public struct Announced: ControlMessage {
    public static let messageType = MessageType.announced
    public var files: Int
    public init(files: Int) { self.files = files }

    /// This message in a frame, written directly: the tracker sends one for
    /// every announce, and Foundation's encoder took longer than taking the
    /// announce into the registry. The same bytes as ``WireJSON`` writes.
    public func frame(requestID: UInt32, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(WireError) -> Frame {
        var buffer = allocator.buffer(capacity: 32)
        buffer.writeStaticString(#"{"files":"#)
        buffer.writeString(String(files))
        buffer.writeInteger(UInt8(ascii: "}"))
        return Frame(type: Self.messageType, requestID: requestID, payload: buffer)
    }
}

/// `list`: the files available now, one page at a time: the rows after
/// `after` (from the start without it).
public struct ListFiles: ControlMessage {
    public static let messageType = MessageType.list
    public var token: String
    public var after: ListCursor?
    /// `true`: the rows come as arrays (``FileList/compact``), about a third
    /// fewer bytes than objects. A tracker that predates it ignores it and
    /// answers with objects, which ``FileList`` reads as well.
    public var compact: Bool?
    public init(token: String, after: ListCursor? = nil, compact: Bool? = nil) {
        self.token = token
        self.after = after
        self.compact = compact
    }
}

/// Where a page of `fileList` ended: its last row's name and content id.
public struct ListCursor: Codable, Sendable, Equatable, Hashable {
    public var name: String
    public var contentID: ContentID
    public init(name: String, contentID: ContentID) {
        self.name = name
        self.contentID = contentID
    }
}

/// One row of a `fileList`.
public struct ListedFile: Codable, Sendable, Equatable {
    public var name: String
    public var contentID: ContentID
    public var size: UInt64
    /// Connected peers holding every chunk.
    public var holders: Int
    /// Connected peers holding some chunks.
    public var partialHolders: Int
    public init(name: String, contentID: ContentID, size: UInt64, holders: Int, partialHolders: Int) {
        self.name = name
        self.contentID = contentID
        self.size = size
        self.holders = holders
        self.partialHolders = partialHolders
    }
}

/// `fileList`: the answer to `list`, sorted by name then content id. When
/// more rows follow, `next` is the cursor to ask for them with.
///
/// Its rows travel as objects under `files`, or, when the `list` asked for
/// `compact`, as arrays under `rows`: `[name, contentID, size, holders,
/// partialHolders]` (a reader ignores elements past these five, room for
/// later fields). Decoding takes either.
public struct FileList: ControlMessage {
    public static let messageType = MessageType.fileList
    public var files: [ListedFile]
    public var next: ListCursor?
    /// Encode the rows as arrays under `rows` (not itself on the wire). Part
    /// of `==`: the same rows read from the two forms compare unequal.
    public var compact: Bool
    public init(files: [ListedFile], next: ListCursor? = nil, compact: Bool = false) {
        self.files = files
        self.next = next
        self.compact = compact
    }

    private enum CodingKeys: String, CodingKey {
        case files, next, rows
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        next = try container.decodeIfPresent(ListCursor.self, forKey: .next)
        // `"rows": null` counts as absent, as every optional field (PROTOCOL.md 5.1).
        if container.contains(.rows), try !container.decodeNil(forKey: .rows) {
            var rows = try container.nestedUnkeyedContainer(forKey: .rows)
            var files: [ListedFile] = []
            while !rows.isAtEnd {
                var row = try rows.nestedUnkeyedContainer()
                files.append(ListedFile(name: try row.decode(String.self), contentID: try row.decode(ContentID.self),
                                        size: try row.decode(UInt64.self), holders: try row.decode(Int.self),
                                        partialHolders: try row.decode(Int.self)))
            }
            self.files = files
            compact = true
        } else {
            files = try container.decode([ListedFile].self, forKey: .files)
            compact = false
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if compact {
            var rows = container.nestedUnkeyedContainer(forKey: .rows)
            for file in files {
                var row = rows.nestedUnkeyedContainer()
                try row.encode(file.name)
                try row.encode(file.contentID)
                try row.encode(file.size)
                try row.encode(file.holders)
                try row.encode(file.partialHolders)
            }
        } else {
            try container.encode(files, forKey: .files)
        }
        try container.encodeIfPresent(next, forKey: .next)
    }
}

/// `details`: one file, by name or by content id (one of the two).
public struct Details: ControlMessage {
    public static let messageType = MessageType.details
    public var token: String
    public var name: String?
    public var contentID: ContentID?
    /// `true`: leave the manifests out of the reply (a downloader refreshing
    /// its holders has the manifest already; at 1 TiB it is 11 MiB).
    public var withoutManifest: Bool?
    /// The holders after this user name (a later page of them).
    public var holdersAfter: String?
    /// The `downloadID` of an earlier `fileDetails` for the same content:
    /// the holders listed now are added to that download's, and the reply
    /// carries the same id (a downloader refreshing its holders, or asking
    /// for their next page, keeps one id).
    public var downloadID: String?
    /// Chunk-map versions the asker has, by holder: those holders come with
    /// the chunks they gained since (`gained`) instead of their whole maps.
    public var knownMaps: [String: UInt64]?
    public init(token: String, name: String? = nil, contentID: ContentID? = nil, withoutManifest: Bool? = nil, holdersAfter: String? = nil,
                downloadID: String? = nil, knownMaps: [String: UInt64]? = nil) {
        self.token = token
        self.name = name
        self.contentID = contentID
        self.withoutManifest = withoutManifest
        self.holdersAfter = holdersAfter
        self.downloadID = downloadID
        self.knownMaps = knownMaps
    }
}

/// A holder in `fileDetails`. Never a password or anything derived from one.
public struct Holder: Codable, Sendable, Equatable {
    public var user: String
    public var host: String
    public var port: Int
    public var countDownloads: Int
    public var countFailures: Int
    public var bytesServed: UInt64
    /// Base64 of a ``ChunkMap``; absent (and no `gained`) means the holder has every chunk.
    public var chunks: String?
    /// A partial holder's chunk-map version (to send back in `knownMaps`).
    public var mapVersion: UInt64?
    /// Instead of `chunks`: the chunks it gained since the version the
    /// asker said it knows (a refresh of a map the asker has).
    public var gained: [Int]?
    /// The SHA-256 fingerprint (64 hex digits) of the certificate the holder
    /// serves chunks with over TLS; absent: it serves in clear.
    public var keyFingerprint: String?
    public init(user: String, host: String, port: Int, countDownloads: Int, countFailures: Int, bytesServed: UInt64, chunks: String?,
                keyFingerprint: String? = nil) {
        self.keyFingerprint = keyFingerprint
        self.user = user
        self.host = host
        self.port = port
        self.countDownloads = countDownloads
        self.countFailures = countFailures
        self.bytesServed = bytesServed
        self.chunks = chunks
    }
}

/// One content in `fileDetails`.
public struct FileDetail: Codable, Sendable, Equatable {
    public var name: String
    public var contentID: ContentID
    /// The manifest, when the reply carries it: only for one content, small
    /// enough, and not asked `withoutManifest`. Otherwise ask `manifest`.
    public var manifest: ManifestPayload?
    /// A page of holders, by user name.
    public var holders: [Holder]
    /// Holders after this page (ask again with `holdersAfter`).
    public var moreHolders: Int?
    /// The file size and chunk count (always given, with or without the manifest).
    public var size: UInt64?
    public var chunkCount: Int?
    /// Connected peers holding every chunk, and some chunks.
    public var completeHolders: Int?
    public var partialHolders: Int?
    /// Who first shared this content under this name, and when (Unix
    /// seconds): what tells two contents of one name apart.
    public var firstSharedBy: String?
    public var since: Double?

    /// A token naming this download: bound by the tracker to the account
    /// that asked, this content and the holders listed. A `report` must
    /// carry it and may name only a holder it lists.
    public var downloadID: String?

    public init(name: String, contentID: ContentID, manifest: ManifestPayload?, holders: [Holder], moreHolders: Int? = nil,
                size: UInt64? = nil, chunkCount: Int? = nil, completeHolders: Int? = nil, partialHolders: Int? = nil,
                firstSharedBy: String? = nil, since: Double? = nil, downloadID: String? = nil) {
        self.name = name
        self.contentID = contentID
        self.manifest = manifest
        self.holders = holders
        self.moreHolders = moreHolders
        self.size = size
        self.chunkCount = chunkCount
        self.completeHolders = completeHolders
        self.partialHolders = partialHolders
        self.firstSharedBy = firstSharedBy
        self.since = since
        self.downloadID = downloadID
    }
}

/// `fileDetails`: every content shared under the name asked for (or the one
/// content asked for), oldest first; `moreContents` counts those left out.
public struct FileDetails: ControlMessage {
    public static let messageType = MessageType.fileDetails
    public var files: [FileDetail]
    public var moreContents: Int?
    public init(files: [FileDetail], moreContents: Int? = nil) {
        self.files = files
        self.moreContents = moreContents
    }
}

/// `report`: a downloader says how a transfer from `holder` went. Only about a
/// holder the `fileDetails` that gave `downloadID` listed, once per reporting
/// account, holder and content.
public struct Report: ControlMessage {
    public static let messageType = MessageType.report
    public enum Outcome: String, Codable, Sendable { case success, failure }
    public var token: String
    public var contentID: ContentID
    public var holder: String
    public var outcome: Outcome
    /// Verified bytes received from the holder.
    public var bytes: UInt64
    /// The `downloadID` from the `fileDetails` that listed the holder
    /// (optional in the JSON for older senders; the tracker requires it).
    public var downloadID: String?
    public init(token: String, contentID: ContentID, holder: String, outcome: Outcome, bytes: UInt64, downloadID: String? = nil) {
        self.token = token
        self.contentID = contentID
        self.holder = holder
        self.outcome = outcome
        self.bytes = bytes
        self.downloadID = downloadID
    }
}

/// `reported`: the holder's counters after the report.
public struct Reported: ControlMessage {
    public static let messageType = MessageType.reported
    public var holder: String
    public var countDownloads: Int
    public var countFailures: Int
    public init(holder: String, countDownloads: Int, countFailures: Int) {
        self.holder = holder
        self.countDownloads = countDownloads
        self.countFailures = countFailures
    }
}
