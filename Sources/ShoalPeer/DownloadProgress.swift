/// A snapshot of a download, for progress lines.
public struct DownloadProgress: Sendable {
    public var name: String
    public var totalBytes: UInt64
    public var doneBytes: UInt64
    /// Bytes fetched in this run (excluding resumed chunks), and the seconds it took.
    public var fetchedBytes: UInt64
    public var elapsed: Double
    /// Chunks served in this run, by holder.
    public var chunksByHolder: [String: Int]
    public var holdersInUse: Int

    public init(name: String, totalBytes: UInt64, doneBytes: UInt64, fetchedBytes: UInt64, elapsed: Double,
                chunksByHolder: [String: Int], holdersInUse: Int) {
        self.name = name
        self.totalBytes = totalBytes
        self.doneBytes = doneBytes
        self.fetchedBytes = fetchedBytes
        self.elapsed = elapsed
        self.chunksByHolder = chunksByHolder
        self.holdersInUse = holdersInUse
    }

    public var fraction: Double { totalBytes == 0 ? 1 : Double(doneBytes) / Double(totalBytes) }
    public var bytesPerSecond: Double { elapsed > 0 ? Double(fetchedBytes) / elapsed : 0 }
}

/// What a finished download did.
public struct DownloadResult: Sendable, Codable {
    public struct HolderOutcome: Sendable, Codable {
        public var user: String
        public var host: String
        public var port: Int
        public var chunks: Int
        public var bytes: UInt64
        public var failed: String?
        public var score: Double
        public var responseTimeMs: Double
    }

    public var name: String
    public var path: String
    public var contentID: String
    public var size: UInt64
    public var sha256: String?
    /// Chunks already on disk from an earlier run.
    public var resumedChunks: Int
    public var fetchedChunks: Int
    public var fetchedBytes: UInt64
    /// Bytes of chunk frames received (headers included), compressed or not.
    public var wireBytes: UInt64
    public var seconds: Double
    /// The process's peak resident memory at the end, in KiB (filled in by the command line).
    public var peakMemoryKiB: Int?
    public var holders: [HolderOutcome]

    public var megabytesPerSecond: Double { seconds > 0 ? Double(fetchedBytes) / seconds / 1e6 : 0 }
}
