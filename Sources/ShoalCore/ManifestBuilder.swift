import Dispatch
import Synchronization

/// Builds a ``Manifest`` by hashing a file's chunks, streaming and in parallel.
///
/// Each worker owns one chunk-sized buffer and hashes chunks `w, w+W, w+2W, ...`
/// so memory stays at `workers × chunkSize` whatever the file size, and the
/// workers read neighbouring regions (friendly to read-ahead). With SHA-256 at
/// about 1.4 GB/s per core, two workers keep both cores of a small machine busy.
public struct ManifestBuilder: Sendable {
    /// The number of chunks hashed at once.
    public var parallelism: Int

    /// A builder using one worker per active core.
    public init(parallelism: Int = ManifestBuilder.defaultParallelism) {
        self.parallelism = max(1, parallelism)
    }

    /// One worker per active processor.
    public static var defaultParallelism: Int { ProcessInfoLite.activeProcessorCount }

    /// Hashes `fileSize` bytes from `reader` into a manifest, with the default
    /// chunk size for that size unless `chunkSize` is given.
    ///
    /// - Parameter progress: called from worker threads with the bytes hashed so far.
    public func build(
        fileSize: UInt64,
        chunkSize: UInt32? = nil,
        reader: some ChunkReader,
        progress: (@Sendable (UInt64) -> Void)? = nil
    ) throws -> Manifest {
        let chunkSize = chunkSize ?? ChunkSizing.defaultChunkSize(forFileSize: fileSize)
        let count = ChunkSizing.chunkCount(fileSize: fileSize, chunkSize: chunkSize)
        try Manifest.validate(fileSize: fileSize, chunkSize: chunkSize, digestCount: count)
        let chunkCount = Int(count)
        let workers = min(parallelism, max(chunkCount, 1))
        let digests = UnsafeMutableBufferPointer<ChunkDigest?>.allocate(capacity: chunkCount)
        digests.initialize(repeating: nil)
        defer { digests.deallocate() }
        let slots = SendableSlots(digests)
        let failure = Mutex<(any Error)?>(nil)
        let hashed = Atomic<UInt64>(0)

        WorkerThreads.run(count: workers) { worker in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(chunkSize), alignment: 64)
            defer { buffer.deallocate() }
            var index = worker
            while index < chunkCount {
                if failure.withLock({ $0 != nil }) { return }
                let offset = UInt64(index) * UInt64(chunkSize)
                let expected = Int(min(UInt64(chunkSize), fileSize - offset))
                do {
                    let got = try Self.readFully(reader, at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<expected]))
                    guard got == expected else {
                        throw ManifestError.sourceShorterThanDeclared(chunk: index, expected: expected, actual: got)
                    }
                    slots.base[index] = ChunkDigest(hashing: UnsafeRawBufferPointer(rebasing: buffer[0..<expected]))
                    let total = hashed.add(UInt64(expected), ordering: .relaxed).newValue
                    progress?(total)
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                    return
                }
                index += workers
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return try Manifest(fileSize: fileSize, chunkSize: chunkSize, digests: digests.map { $0! })
    }

    private static func readFully(_ reader: some ChunkReader, at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = try reader.read(at: offset + UInt64(filled), into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if n == 0 { break }
            filled += n
        }
        return filled
    }
}

/// Disjoint slots written by different workers: each index is written by
/// exactly one worker and read only after all workers have joined.
private struct SendableSlots: @unchecked Sendable {
    let base: UnsafeMutableBufferPointer<ChunkDigest?>
    init(_ base: UnsafeMutableBufferPointer<ChunkDigest?>) { self.base = base }
}
