import Crypto

/// What a file is made of: its size, its chunk size and the SHA-256 digest of
/// every chunk, in order. Its ``contentID`` names the file everywhere.
///
/// A `Manifest` is valid by construction: every initializer checks the size
/// limits and that the digest count matches the size, so code that holds one
/// can index chunks without further checks.
///
/// Canonical encoding (all integers big-endian), hashed into the content id:
///
/// ```
///  0        8               16       20       24                 24+32n
///  +--------+---------------+--------+--------+------ ... ------+
///  |SHOALMF1| file size u64 | chunk  | chunk  | digest 0 ...    |
///  | magic  |               | size   | count  | digest n-1      |
///  +--------+---------------+--------+--------+------ ... ------+
/// ```
public struct Manifest: Hashable, Sendable {
    /// The file's size in bytes.
    public let fileSize: UInt64
    /// The size of every chunk but possibly the last.
    public let chunkSize: UInt32
    /// One SHA-256 digest per chunk.
    public let digests: [ChunkDigest]
    /// SHA-256 over ``canonicalBytes``.
    public let contentID: ContentID

    /// The ASCII magic that opens the canonical encoding.
    public static let magic: [UInt8] = Array("SHOALMF1".utf8)
    /// The size of the canonical encoding's fixed part.
    public static let headerSize = 24

    /// Builds a manifest, refusing sizes out of range and a digest count that
    /// does not cover the file exactly.
    public init(fileSize: UInt64, chunkSize: UInt32, digests: [ChunkDigest]) throws(ManifestError) {
        try Self.validate(fileSize: fileSize, chunkSize: chunkSize, digestCount: UInt64(digests.count))
        self.fileSize = fileSize
        self.chunkSize = chunkSize
        self.digests = digests
        self.contentID = ContentID(digest: ChunkDigest(hashing: Self.encode(fileSize, chunkSize, digests)))
    }

    /// Checks a manifest's numbers before anything is allocated for it.
    public static func validate(fileSize: UInt64, chunkSize: UInt32, digestCount: UInt64) throws(ManifestError) {
        guard fileSize <= ChunkSizing.maximumFileSize else {
            throw .fileTooLarge(size: fileSize, limit: ChunkSizing.maximumFileSize)
        }
        guard ChunkSizing.allowedChunkSizes.contains(chunkSize) else {
            throw .chunkSizeOutOfRange(chunkSize)
        }
        let expected = ChunkSizing.chunkCount(fileSize: fileSize, chunkSize: chunkSize)
        guard expected <= ChunkSizing.maximumChunkCount else {
            throw .tooManyChunks(count: expected, limit: ChunkSizing.maximumChunkCount)
        }
        guard expected == digestCount else {
            throw .chunkCountMismatch(expected: expected, actual: digestCount)
        }
    }

    /// Builds a manifest from its digests laid end to end (32 bytes each), as
    /// messages carry them.
    public init(fileSize: UInt64, chunkSize: UInt32, concatenatedDigests bytes: some Collection<UInt8>) throws(ManifestError) {
        let bytes = Array(bytes)
        let whole = bytes.count / ChunkDigest.byteCount
        guard bytes.count % ChunkDigest.byteCount == 0 else {
            throw .digestWrongLength(index: whole, length: bytes.count % ChunkDigest.byteCount)
        }
        try Self.validate(fileSize: fileSize, chunkSize: chunkSize, digestCount: UInt64(whole))
        let digests = bytes.withUnsafeBytes { raw in
            (0..<whole).map { ChunkDigest(loading: raw, at: $0 * ChunkDigest.byteCount) }
        }
        try self.init(fileSize: fileSize, chunkSize: chunkSize, digests: digests)
    }

    /// The digests laid end to end, 32 bytes each.
    public var concatenatedDigests: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(digests.count * ChunkDigest.byteCount)
        for digest in digests { digest.append(to: &out) }
        return out
    }

    /// The number of chunks.
    public var chunkCount: Int { digests.count }

    /// The byte offset at which chunk `index` starts.
    public func offset(ofChunk index: Int) -> UInt64 {
        precondition(index >= 0 && index < digests.count, "chunk \(index) out of range")
        return UInt64(index) * UInt64(chunkSize)
    }

    /// The number of bytes in chunk `index` (the last chunk may be short).
    public func length(ofChunk index: Int) -> Int {
        let start = offset(ofChunk: index)
        return Int(min(UInt64(chunkSize), fileSize - start))
    }

    /// Whether `bytes` are exactly chunk `index`: right length and right digest.
    public func verify(chunk index: Int, bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count == length(ofChunk: index) && ChunkDigest(hashing: bytes) == digests[index]
    }

    /// The canonical encoding drawn in the type's overview.
    public var canonicalBytes: [UInt8] { Self.encode(fileSize, chunkSize, digests) }

    /// Decodes and validates a canonical encoding.
    public init(canonicalBytes bytes: some Collection<UInt8>) throws(ManifestError) {
        let bytes = Array(bytes)
        guard bytes.count >= Self.headerSize else {
            throw .truncated(needed: Self.headerSize, available: bytes.count)
        }
        guard bytes[0..<8].elementsEqual(Self.magic) else { throw .badMagic }
        let fileSize = Self.readInteger(bytes, at: 8, as: UInt64.self)
        let chunkSize = Self.readInteger(bytes, at: 16, as: UInt32.self)
        let count = Self.readInteger(bytes, at: 20, as: UInt32.self)
        // Check the numbers before reading (or allocating for) any digest.
        try Self.validate(fileSize: fileSize, chunkSize: chunkSize, digestCount: UInt64(count))
        let needed = Self.headerSize + Int(count) * ChunkDigest.byteCount
        guard bytes.count >= needed else { throw .truncated(needed: needed, available: bytes.count) }
        guard bytes.count == needed else { throw .trailingBytes(count: bytes.count - needed) }
        var digests = [ChunkDigest]()
        digests.reserveCapacity(Int(count))
        var at = Self.headerSize
        for _ in 0..<Int(count) {
            digests.append(ChunkDigest(bytes: bytes[at..<at + 32])!)
            at += 32
        }
        try self.init(fileSize: fileSize, chunkSize: chunkSize, digests: digests)
    }

    /// Decodes a canonical encoding and checks it hashes to `expected`.
    public init(canonicalBytes bytes: some Collection<UInt8>, expecting expected: ContentID) throws(ManifestError) {
        try self.init(canonicalBytes: bytes)
        guard contentID == expected else { throw .contentIDMismatch(expected: expected, actual: contentID) }
    }

    private static func encode(_ fileSize: UInt64, _ chunkSize: UInt32, _ digests: [ChunkDigest]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(headerSize + digests.count * ChunkDigest.byteCount)
        out += magic
        appendInteger(fileSize, to: &out)
        appendInteger(chunkSize, to: &out)
        appendInteger(UInt32(digests.count), to: &out)
        for digest in digests { digest.append(to: &out) }
        return out
    }

    private static func appendInteger<I: FixedWidthInteger>(_ value: I, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out += $0 }
    }

    private static func readInteger<I: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as: I.Type) -> I {
        var value: I = 0
        for i in 0..<MemoryLayout<I>.size { value = (value << 8) | I(bytes[offset + i]) }
        return value
    }
}

extension Manifest {
    /// The manifest of an empty file under the default rule. Its content id is
    /// SHA-256 of `SHOALMF1`, size 0, chunk size 262 144, count 0.
    public static var empty: Manifest {
        try! Manifest(fileSize: 0, chunkSize: ChunkSizing.defaultChunkSize(forFileSize: 0), digests: [])
    }
}
