import Foundation
import ShoalCore

/// A ``Manifest`` as it travels inside JSON messages: sizes as numbers, the
/// digests laid end to end and base64-encoded (a 1 TiB file's 262 144 digests
/// take 11 MiB this way, against 16 MiB in hex).
public struct ManifestPayload: Codable, Sendable, Equatable {
    public var fileSize: UInt64
    public var chunkSize: UInt32
    /// Base64 of the digests, 32 bytes each, in chunk order.
    public var digests: String

    public init(fileSize: UInt64, chunkSize: UInt32, digests: String) {
        self.fileSize = fileSize
        self.chunkSize = chunkSize
        self.digests = digests
    }

    public init(_ manifest: Manifest) {
        fileSize = manifest.fileSize
        chunkSize = manifest.chunkSize
        digests = Data(manifest.concatenatedDigests).base64EncodedString()
    }

    /// The validated manifest; checks it hashes to `expected` when given.
    public func manifest(expecting expected: ContentID? = nil) throws(ManifestError) -> Manifest {
        // Refuse absurd numbers before decoding the digest string.
        let count = fileSize <= ChunkSizing.maximumFileSize && ChunkSizing.allowedChunkSizes.contains(chunkSize)
            ? ChunkSizing.chunkCount(fileSize: fileSize, chunkSize: chunkSize) : 0
        try Manifest.validate(fileSize: fileSize, chunkSize: chunkSize, digestCount: count)
        guard let bytes = Data(base64Encoded: digests) else {
            throw .badDigestEncoding
        }
        let manifest = try Manifest(fileSize: fileSize, chunkSize: chunkSize, concatenatedDigests: bytes)
        if let expected, manifest.contentID != expected {
            throw .contentIDMismatch(expected: expected, actual: manifest.contentID)
        }
        return manifest
    }
}
