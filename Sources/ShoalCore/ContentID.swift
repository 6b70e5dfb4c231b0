/// A file's identity: SHA-256 over its manifest's canonical encoding
/// (file size, chunk size and every chunk digest; see ``Manifest/canonicalBytes``).
///
/// The same bytes chunked by the same rule give the same content id on every
/// machine, so peers and the tracker use it to name a file regardless of the
/// name it is shared under.
public struct ContentID: Hashable, Sendable, Comparable, CustomStringConvertible {
    var storage: Digest32

    /// A content id from exactly 32 bytes, or nil for any other length.
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard let storage = Digest32(bytes: bytes) else { return nil }
        self.storage = storage
    }

    /// A content id from 64 hexadecimal digits, or nil.
    public init?(hex: String) {
        guard let storage = Digest32(hex: hex) else { return nil }
        self.storage = storage
    }

    init(digest: ChunkDigest) { self.storage = digest.storage }

    /// The 32 bytes.
    public var bytes: [UInt8] { storage.bytes }
    /// Lowercase hexadecimal, 64 characters.
    public var hex: String { storage.hex }
    /// The first 12 hex digits, for display.
    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }

    public static func < (lhs: ContentID, rhs: ContentID) -> Bool {
        (lhs.storage.w0, lhs.storage.w1, lhs.storage.w2, lhs.storage.w3)
            < (rhs.storage.w0, rhs.storage.w1, rhs.storage.w2, rhs.storage.w3)
    }
}

extension ContentID: Codable {
    /// Encoded as 64 lowercase hex digits.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = ContentID(hex: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "a content id is 64 hex digits, got \(text.count) characters")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
