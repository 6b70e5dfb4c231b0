/// How a file is cut into chunks.
///
/// The rule: aim for about ``targetChunkCount`` chunks, rounding the chunk size
/// up to a power of two and clamping it to 256 KiB ... 4 MiB.
///
/// | file size          | chunk size | chunks        |
/// |--------------------|------------|---------------|
/// | 0 ... 256 MiB      | 256 KiB    | 0 ... 1 024   |
/// | 1 GiB              | 1 MiB      | 1 024         |
/// | 4 GiB and more     | 4 MiB      | 1 024 and up  |
///
/// Small chunks give the downloader many units to spread over peers and retry
/// cheaply; large ones keep per-chunk overhead (a request, a frame, a hash
/// finalisation, a tracker bit) negligible on big files. A caller may override
/// the size with any value in ``allowedChunkSizes``; the content id depends on
/// the chunk size, so peers must agree on it (the default rule guarantees that).
public enum ChunkSizing {
    /// The smallest chunk size the default rule picks: 256 KiB.
    public static let minimumDefault: UInt32 = 256 * 1024
    /// The largest chunk size anyone may use: 4 MiB. Chunk frames are sized from it.
    public static let maximum: UInt32 = 4 * 1024 * 1024
    /// The smallest chunk size anyone may use (an override): 16 KiB.
    public static let minimum: UInt32 = 16 * 1024
    /// The chunk count the default rule aims for.
    public static let targetChunkCount: UInt64 = 1024
    /// Chunk sizes a manifest may carry.
    public static let allowedChunkSizes: ClosedRange<UInt32> = minimum...maximum

    /// The largest file Shoal handles: 1 TiB (262 144 chunks of 4 MiB).
    public static let maximumFileSize: UInt64 = 1 << 40
    /// The most chunks a manifest may list (8 MiB of digests).
    public static let maximumChunkCount: UInt64 = 262_144

    /// The chunk size the default rule gives a file of `fileSize` bytes.
    public static func defaultChunkSize(forFileSize fileSize: UInt64) -> UInt32 {
        let wanted = (fileSize + targetChunkCount - 1) / targetChunkCount
        var size = UInt64(minimumDefault)
        while size < wanted && size < UInt64(maximum) { size <<= 1 }
        return UInt32(size)
    }

    /// The number of chunks of `chunkSize` bytes that cover `fileSize` bytes.
    @inlinable
    public static func chunkCount(fileSize: UInt64, chunkSize: UInt32) -> UInt64 {
        precondition(chunkSize > 0)
        return (fileSize + UInt64(chunkSize) - 1) / UInt64(chunkSize)
    }
}
