import ShoalCore

/// `manifest`: part of a content's manifest, the digests from chunk `from`
/// on. A manifest is asked for in parts, so no reply is larger than a page,
/// whatever the file size (1 TiB has 8 MiB of digests).
public struct ManifestRequest: ControlMessage {
    public static let messageType = MessageType.manifest
    public var token: String
    public var contentID: ContentID
    public var from: Int
    public init(token: String, contentID: ContentID, from: Int) {
        self.token = token
        self.contentID = contentID
        self.from = from
    }
}

/// `manifestPart`: digests `from ..< from + count` of a content's manifest,
/// with the file size and chunk size that the whole manifest hashes with.
public struct ManifestPart: ControlMessage {
    public static let messageType = MessageType.manifestPart
    /// Digests in one part, at most: 8 KiB of them (11 KiB as base64), so no reply is big.
    public static let maximumDigests = 256

    public var contentID: ContentID
    public var fileSize: UInt64
    public var chunkSize: UInt32
    public var from: Int
    /// Base64 of the digests, 32 bytes each, in chunk order.
    public var digests: String
    public init(contentID: ContentID, fileSize: UInt64, chunkSize: UInt32, from: Int, digests: String) {
        self.contentID = contentID
        self.fileSize = fileSize
        self.chunkSize = chunkSize
        self.from = from
        self.digests = digests
    }
}
