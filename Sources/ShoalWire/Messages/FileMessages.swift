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
}

/// `list`: the files available now.
public struct ListFiles: ControlMessage {
    public static let messageType = MessageType.list
    public var token: String
    public init(token: String) { self.token = token }
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

/// `fileList`: the answer to `list`, sorted by name then content id.
public struct FileList: ControlMessage {
    public static let messageType = MessageType.fileList
    public var files: [ListedFile]
    public init(files: [ListedFile]) { self.files = files }
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
    public init(token: String, name: String? = nil, contentID: ContentID? = nil, withoutManifest: Bool? = nil) {
        self.token = token
        self.name = name
        self.contentID = contentID
        self.withoutManifest = withoutManifest
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
    /// Base64 of a ``ChunkMap``; absent means the holder has every chunk.
    public var chunks: String?
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
    /// Absent when the request asked `withoutManifest`.
    public var manifest: ManifestPayload?
    public var holders: [Holder]
    public init(name: String, contentID: ContentID, manifest: ManifestPayload?, holders: [Holder]) {
        self.name = name
        self.contentID = contentID
        self.manifest = manifest
        self.holders = holders
    }
}

/// `fileDetails`: every content shared under the name asked for (or the one
/// content asked for), most complete holders first.
public struct FileDetails: ControlMessage {
    public static let messageType = MessageType.fileDetails
    public var files: [FileDetail]
    public init(files: [FileDetail]) { self.files = files }
}

/// `report`: a downloader says how a transfer from `holder` went. Only about a
/// holder the tracker gave it for this content.
public struct Report: ControlMessage {
    public static let messageType = MessageType.report
    public enum Outcome: String, Codable, Sendable { case success, failure }
    public var token: String
    public var contentID: ContentID
    public var holder: String
    public var outcome: Outcome
    /// Verified bytes received from the holder.
    public var bytes: UInt64
    public init(token: String, contentID: ContentID, holder: String, outcome: Outcome, bytes: UInt64) {
        self.token = token
        self.contentID = contentID
        self.holder = holder
        self.outcome = outcome
        self.bytes = bytes
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
