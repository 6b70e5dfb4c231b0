#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import NIOCore
import ShoalCore
import ShoalWire

/// A shared file's chunks prepared once for the wire: each chunk compressed
/// (when that pays) into `.shoal/cache/<content id>-z<level>.dat` at the
/// chunk's own offset (a sparse file), with an index saying which chunks are
/// compressed and how long each is. Serving a chunk then costs no deflate and
/// no copy through the process, whoever asks and however often: its frame is
/// 52 bytes from memory and a region of the cache or of the file itself,
/// which the kernel sends from the page cache (`sendfile`).
///
/// The cache is keyed by content id and level, so it is reused across restarts
/// and a changed file (a new content id) gets a new one. Preparing it is the
/// setup a seeder does once, like hashing its files.
final class PreparedChunks: @unchecked Sendable {
    // data and lengths never change after init.
    let manifest: Manifest
    /// Compressed length per chunk; 0 means the chunk travels stored.
    private let lengths: [UInt32]
    /// The cache's data file.
    let data: FileChunkReader
    let dataPath: String

    private static let magic = Array("SHOALZI1".utf8)

    /// Loads the cache for `manifest` from `directory`, or builds it from `reader`.
    init(manifest: Manifest, reader: FileChunkReader, directory: String, policy: CompressionPolicy) throws {
        self.manifest = manifest
        let base = directory + "/" + manifest.contentID.hex + "-z\(policy.level)"
        dataPath = base + ".dat"
        let indexPath = base + ".idx"
        if let lengths = Self.loadIndex(indexPath, manifest: manifest, dataPath: dataPath) {
            self.lengths = lengths
        } else {
            self.lengths = try Self.build(manifest: manifest, reader: reader, dataPath: dataPath, indexPath: indexPath, policy: policy)
        }
        // Never through a link put in the cache's place: it is served as is.
        let fd = open(dataPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw errno == ELOOP ? StorageError.symbolicLink(path: dataPath) : StorageError.cannotOpen(path: dataPath, errno: errno) }
        data = try FileChunkReader(owning: fd, path: dataPath)
    }

    /// Bytes saved on the wire per transfer of the whole file.
    var compressedChunks: Int { lengths.filter { $0 > 0 }.count }

    /// The `chunkData` frame for chunk `index`, its data a region of the
    /// cache (compressed) or of `file` (stored), sent through `files`; read
    /// into memory if `files` has no descriptor to spare.
    func frame(index: Int, contentID: ContentID, requestID: UInt32, file: FileChunkReader, stored: Bool = false, files: ConnectionFiles,
               allocator: ByteBufferAllocator) throws(StorageError) -> OutgoingFrame {
        let rawLength = manifest.length(ofChunk: index)
        // Asked for stored: straight from the file, whatever the cache holds.
        let compressed = stored ? 0 : Int(lengths[index])
        let offset = manifest.offset(ofChunk: index)
        let flags: FrameFlags = compressed > 0 ? [.compressed] : []
        let region = compressed > 0
            ? try files.region(of: data, offset: offset, length: compressed)
            : try files.region(of: file, offset: offset, length: rawLength)
        if let region {
            var start = allocator.buffer(capacity: ChunkData.headerSize)
            ChunkData.writeHeader(contentID: contentID, index: UInt32(index), rawLength: UInt32(rawLength), to: &start)
            return .fileBacked(FileBackedFrame(type: .chunkData, flags: flags, requestID: requestID, start: start, rest: region))
        }
        let source = compressed > 0 ? data : file
        let dataLength = compressed > 0 ? compressed : rawLength
        var payload = allocator.buffer(capacity: ChunkData.headerSize + dataLength)
        ChunkData.writeHeader(contentID: contentID, index: UInt32(index), rawLength: UInt32(rawLength), to: &payload)
        let got: Int
        do {
            got = try payload.writeWithUnsafeMutableBytes(minimumWritableBytes: dataLength) { buffer in
                try source.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<dataLength]))
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw .readFailed(path: source.path, offset: offset, errno: EIO)
        }
        guard got == dataLength else { throw .fileShrank(path: source.path, size: offset + UInt64(got), needed: offset + UInt64(dataLength)) }
        return .frame(Frame(type: .chunkData, flags: flags, requestID: requestID, payload: payload))
    }

    /// The index at `path`, if it belongs to `manifest` and agrees with the
    /// data file: every compressed length shorter than its chunk and inside
    /// the data file. Anything else (a cache from a crash, a damaged one) is
    /// nil, and the cache is built again.
    private static func loadIndex(_ path: String, manifest: Manifest, dataPath: String) -> [UInt32]? {
        let count = manifest.chunkCount
        guard let data = FileManager.default.contents(atPath: path), data.count == 12 + 4 * count,
              Array(data.prefix(8)) == magic else { return nil }
        let bytes = [UInt8](data)
        let stored = bytes[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard stored == UInt32(count) else { return nil }
        let lengths = (0..<count).map { i in bytes[(12 + 4 * i)..<(16 + 4 * i)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
        var info = stat()
        guard stat(dataPath, &info) == 0 else { return nil }
        for (index, length) in lengths.enumerated() where length > 0 {
            guard Int(length) < manifest.length(ofChunk: index),
                  manifest.offset(ofChunk: index) + UInt64(length) <= UInt64(info.st_size) else { return nil }
        }
        return lengths
    }

    /// Compresses every chunk that pays, in parallel, into the sparse data file; writes the index last.
    private static func build(manifest: Manifest, reader: FileChunkReader, dataPath: String, indexPath: String, policy: CompressionPolicy) throws -> [UInt32] {
        let temporary = dataPath + ".tmp"
        let out = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard out >= 0 else { throw StorageError.cannotWrite(path: temporary, errno: errno) }
        defer { close(out) }
        let count = manifest.chunkCount
        let lengths = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: max(count, 1))
        lengths.initialize(repeating: 0)
        defer { lengths.deallocate() }
        let slots = Slots(lengths)
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, count))
        let failure = NSLock()
        nonisolated(unsafe) var firstError: (any Error)?
        WorkerThreads.run(count: workers) { worker in
            let compressor = ChunkCompressor(policy: policy)
            let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(manifest.chunkSize), alignment: 16)
            defer { raw.deallocate() }
            var encoded = ByteBuffer()
            var index = worker
            while index < count {
                do {
                    let length = manifest.length(ofChunk: index)
                    let chunk = UnsafeMutableRawBufferPointer(rebasing: raw[0..<length])
                    guard try reader.read(at: manifest.offset(ofChunk: index), into: chunk) == length else {
                        throw StorageError.readFailed(path: reader.path, offset: manifest.offset(ofChunk: index), errno: EIO)
                    }
                    encoded.clear()
                    if case let .compressed(size) = compressor.encode(UnsafeRawBufferPointer(chunk), key: nil, into: &encoded) {
                        let failed = encoded.withUnsafeReadableBytes {
                            PositionalWrite.all(UnsafeRawBufferPointer(rebasing: $0[0..<size]), to: out, at: manifest.offset(ofChunk: index))
                        }
                        if let failed { throw StorageError.cannotWrite(path: temporary, errno: failed.errno) }
                        slots.base[index] = UInt32(size)
                    }
                } catch {
                    failure.withLock { if firstError == nil { firstError = error } }
                    return
                }
                index += workers
            }
        }
        if let firstError { throw firstError }
        // On disk before the index that vouches for it: an index is only
        // ever found beside the data it describes, whatever crashed.
        guard fsync(out) == 0 else { throw StorageError.writeFailed(path: temporary, offset: 0, errno: errno) }
        guard rename(temporary, dataPath) == 0 else { throw StorageError.cannotWrite(path: dataPath, errno: errno) }
        var index = magic
        for shift in [24, 16, 8, 0] { index.append(UInt8(truncatingIfNeeded: UInt32(count) >> UInt32(shift))) }
        for length in lengths.prefix(count) {
            for shift in [24, 16, 8, 0] { index.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        }
        let indexTemporary = indexPath + ".tmp"
        guard FileManager.default.createFile(atPath: indexTemporary, contents: Data(index)) else {
            throw StorageError.cannotWrite(path: indexTemporary, errno: errno)
        }
        let indexFD = open(indexTemporary, O_RDONLY | O_CLOEXEC)
        let synced = indexFD >= 0 && fsync(indexFD) == 0
        if indexFD >= 0 { close(indexFD) }
        guard synced, rename(indexTemporary, indexPath) == 0 else { throw StorageError.cannotWrite(path: indexPath, errno: errno) }
        return Array(lengths.prefix(count))
    }

    /// Disjoint slots written by different workers, read after they all joined.
    private struct Slots: @unchecked Sendable {
        let base: UnsafeMutableBufferPointer<UInt32>
        init(_ base: UnsafeMutableBufferPointer<UInt32>) { self.base = base }
    }
}
