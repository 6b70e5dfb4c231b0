/// Where chunk bytes come from when a manifest is built: the one door through
/// which the pure core sees file contents.
///
/// Implementations must allow concurrent calls from several threads (the
/// manifest builder hashes chunks in parallel); `pread` on one descriptor does.
public protocol ChunkReader: Sendable {
    /// Reads up to `buffer.count` bytes starting at `offset`, returning how
    /// many were read (fewer only at the end of the data).
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A ``ChunkReader`` over bytes in memory: for tests and small data.
public struct MemoryChunkReader: ChunkReader {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < UInt64(bytes.count) else { return 0 }
        let start = Int(offset)
        let count = min(buffer.count, bytes.count - start)
        bytes.withUnsafeBytes { source in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<start + count]))
        }
        return count
    }
}
