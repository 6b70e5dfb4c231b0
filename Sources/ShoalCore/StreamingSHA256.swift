import Crypto

/// SHA-256 over a stream of pieces: for whole-file checks.
public struct StreamingSHA256: Sendable {
    private var hasher = SHA256()
    public init() {}

    public mutating func update(_ bytes: some Collection<UInt8>) {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }) {
            return done
        }
        hasher.update(data: Array(bytes))
    }

    /// The digest in lowercase hex.
    public func finalize() -> String { ChunkDigest(hasher.finalize()).hex }
}
