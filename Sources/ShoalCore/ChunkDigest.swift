import Crypto

/// The SHA-256 digest of one chunk's bytes.
public struct ChunkDigest: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline var storage: Digest32

    /// The number of bytes in a chunk digest.
    public static let byteCount = 32

    /// A digest from exactly 32 bytes, or nil for any other length.
    @inlinable
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard let storage = Digest32(bytes: bytes) else { return nil }
        self.storage = storage
    }

    /// The digest in the 32 bytes at `offset` of `raw`, which must hold them.
    @inlinable
    init(loading raw: UnsafeRawBufferPointer, at offset: Int) {
        storage = Digest32(loading: raw, at: offset)
    }

    /// A digest from 64 hexadecimal digits, or nil.
    public init?(hex: String) {
        guard let storage = Digest32(hex: hex) else { return nil }
        self.storage = storage
    }

    /// Hashes `bytes` with SHA-256.
    public init(hashing bytes: UnsafeRawBufferPointer) {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        self.init(hasher.finalize())
    }

    /// Hashes `bytes` with SHA-256.
    public init(hashing bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { ChunkDigest(hashing: $0) }
    }

    init(_ digest: SHA256.Digest) {
        self.storage = digest.withUnsafeBytes { Digest32(bytes: $0)! }
    }

    /// The 32 digest bytes.
    public var bytes: [UInt8] { storage.bytes }

    /// Appends the 32 digest bytes to `out`.
    @inlinable
    public func append(to out: inout [UInt8]) { storage.append(to: &out) }
    /// Lowercase hexadecimal, 64 characters.
    public var hex: String { storage.hex }
    public var description: String { hex }
}
