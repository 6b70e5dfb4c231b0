/// Why a manifest was refused. Each message names the offending value.
public enum ManifestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file is larger than Shoal handles (``ChunkSizing/maximumFileSize``).
    case fileTooLarge(size: UInt64, limit: UInt64)
    /// The chunk size is outside ``ChunkSizing/allowedChunkSizes``.
    case chunkSizeOutOfRange(UInt32)
    /// The chunk size is so small for the file that the manifest would list too many chunks.
    case tooManyChunks(count: UInt64, limit: UInt64)
    /// The number of digests does not match the file size and chunk size.
    case chunkCountMismatch(expected: UInt64, actual: UInt64)
    /// A digest is not 32 bytes long.
    case digestWrongLength(index: Int, length: Int)
    /// The digests are not valid base64 (in a JSON manifest).
    case badDigestEncoding
    /// The encoding does not start with the manifest magic.
    case badMagic
    /// The encoding ends before the manifest does.
    case truncated(needed: Int, available: Int)
    /// Bytes follow the last digest.
    case trailingBytes(count: Int)
    /// The manifest hashes to another content id than the one it was announced under.
    case contentIDMismatch(expected: ContentID, actual: ContentID)
    /// The bytes read from the source differ in length from the size given.
    case sourceShorterThanDeclared(chunk: Int, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case let .fileTooLarge(size, limit):
            return "the manifest describes a file of \(size) bytes, larger than the \(limit)-byte limit; split the file or check where the manifest came from"
        case let .chunkSizeOutOfRange(size):
            return "the manifest's chunk size \(size) is outside \(ChunkSizing.allowedChunkSizes.lowerBound)...\(ChunkSizing.allowedChunkSizes.upperBound) bytes; pick a size in that range"
        case let .tooManyChunks(count, limit):
            return "the manifest would list \(count) chunks, more than the \(limit) allowed; use a larger chunk size"
        case let .chunkCountMismatch(expected, actual):
            return "the manifest lists \(actual) chunk digests but its size and chunk size call for \(expected); the manifest is corrupt or forged"
        case let .digestWrongLength(index, length):
            return "chunk \(index)'s digest is \(length) bytes long, not 32; the manifest is corrupt"
        case .badDigestEncoding:
            return "the manifest's digest list is not valid base64; the sender is broken or the message was altered"
        case .badMagic:
            return "the data is not a Shoal manifest (wrong magic); check the file or the sender's version"
        case let .truncated(needed, available):
            return "the manifest is truncated: it needs \(needed) bytes but only \(available) arrived"
        case let .trailingBytes(count):
            return "the manifest has \(count) unexpected bytes after its last digest; it is corrupt"
        case let .contentIDMismatch(expected, actual):
            return "the manifest hashes to content id \(actual.short) but was announced as \(expected.short); it was altered on the way"
        case let .sourceShorterThanDeclared(chunk, expected, actual):
            return "chunk \(chunk) yielded \(actual) bytes where \(expected) were expected; the file changed while it was being hashed, hash it again"
        }
    }
}
