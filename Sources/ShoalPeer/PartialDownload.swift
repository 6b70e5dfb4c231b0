#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShoalCore
import Synchronization

/// A download in progress, on disk, resumable: the chunks verified so far
/// written at their offsets in `.shoal/partial/<content id>.part`, and a map
/// of which they are in `<content id>.have` (one bit per chunk, set after
/// the chunk's bytes are written, and written out by ``recordMap()``, which a
/// download calls every few dozen milliseconds). The manifest sits beside them, so a
/// restarted download knows what it is fetching without asking anyone.
///
/// On reopening, every chunk the map claims is hashed again from disk (a
/// crash may have kept the bit and lost the bytes); only those that verify
/// count. ``finish(as:flush:)`` renames the complete file into the folder under
/// its name: nobody ever sees half a file there.
///
/// Its files are opened beneath the `.shoal/partial/` descriptor with
/// `O_NOFOLLOW` and checked to be regular files before anything is truncated
/// or written: a link put there is refused, never written through.
///
/// Thread-safe: chunks may be written from several tasks at once.
public final class PartialDownload: @unchecked Sendable {
    // fd and haveFD never change once open; the map is behind a lock.
    public let manifest: Manifest
    /// The name it is downloaded as.
    public let name: String
    public let dataPath: String
    private let havePath: String
    private let manifestPath: String
    private let fd: Int32
    private let haveFD: Int32
    private let map: Mutex<Recorded>

    /// The chunk map, and the bytes of it not yet written to the `.have` file.
    private struct Recorded {
        var map: ChunkMap
        var unwritten: Range<Int>?
    }
    /// One writer at a time: concurrent buffered writes to one file contend on
    /// the inode's lock in the kernel, where the waiter spins and burns a core.
    /// A plain pthread mutex: Swift's `Mutex` is a priority-inheriting futex on
    /// Linux, whose contended path costs far more for a lock held this long.
    private let writing = NSLock()

    /// Opens (or creates) the partial download of `manifest` in `folder`.
    public init(folder: SharedFolder, manifest: Manifest, name: String) throws(StorageError) {
        let base = folder.partialDirectory + "/" + manifest.contentID.hex
        self.manifest = manifest
        self.name = name
        self.dataPath = base + ".part"
        self.havePath = base + ".have"
        self.manifestPath = base + ".manifest"
        let directory = folder.partialDirectoryDescriptor
        let part = manifest.contentID.hex
        let fd = try Self.openPart(part + ".part", in: directory, path: dataPath)
        let haveFD: Int32
        do throws(StorageError) {
            haveFD = try Self.openPart(part + ".have", in: directory, path: havePath)
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.haveFD = haveFD
        // Size the data file (sparse) and the map.
        if ftruncate(fd, off_t(manifest.fileSize)) != 0 {
            let code = errno
            close(fd)
            close(haveFD)
            throw .cannotWrite(path: dataPath, errno: code)
        }
        let mapBytes = (manifest.chunkCount + 7) / 8
        var claimed = [UInt8](repeating: 0, count: mapBytes)
        let got = claimed.withUnsafeMutableBytes { pread(haveFD, $0.baseAddress, mapBytes, 0) }
        if got != mapBytes { claimed = [UInt8](repeating: 0, count: mapBytes) }
        var verified = ChunkMap(count: manifest.chunkCount)
        if let claimedMap = ChunkMap(count: manifest.chunkCount, bytes: claimed), claimedMap.heldCount > 0 {
            let reader = FileChunkReader(fd: fd, path: dataPath, size: manifest.fileSize)
            var buffer = [UInt8](repeating: 0, count: Int(manifest.chunkSize))
            for index in claimedMap.indices {
                let length = manifest.length(ofChunk: index)
                let ok = buffer.withUnsafeMutableBytes { raw -> Bool in
                    let slice = UnsafeMutableRawBufferPointer(rebasing: raw[0..<length])
                    guard (try? reader.read(at: manifest.offset(ofChunk: index), into: slice)) == length else { return false }
                    return manifest.verify(chunk: index, bytes: UnsafeRawBufferPointer(slice))
                }
                if ok { verified.insert(index) }
            }
        }
        self.map = Mutex(Recorded(map: verified))
        // Rewrite the map as verified, and keep the manifest beside it.
        let bytes = verified.bytes
        _ = bytes.withUnsafeBytes { pwrite(haveFD, $0.baseAddress, $0.count, 0) }
        _ = ftruncate(haveFD, off_t(bytes.count))
        let manifestFD = openat(directory, part + ".manifest", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if manifestFD >= 0 {
            _ = manifest.canonicalBytes.withUnsafeBytes { pwrite(manifestFD, $0.baseAddress, $0.count, 0) }
            close(manifestFD)
        }
    }

    /// Opens (creating it if missing) the part file `name` beneath
    /// `directory` for reading and writing: never through a symbolic link,
    /// and only a regular file, checked on the descriptor before anything
    /// truncates or writes it.
    private static func openPart(_ name: String, in directory: Int32, path: String) throws(StorageError) -> Int32 {
        let fd = openat(directory, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw errno == ELOOP ? .symbolicLink(path: path) : .cannotWrite(path: path, errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .notARegularFile(path: path)
        }
        return fd
    }

    deinit {
        try? recordMap()
        close(fd)
        close(haveFD)
    }

    /// The chunks verified and written.
    public var have: ChunkMap { map.withLock { $0.map } }

    /// Writes verified chunk `index` and records it. The bytes must already be verified.
    public func write(chunk index: Int, bytes: UnsafeRawBufferPointer) throws(StorageError) {
        let offset = manifest.offset(ofChunk: index)
        let failure = writing.withLock { PositionalWrite.all(bytes, to: fd, at: offset) }
        if let failure { throw .writeFailed(path: dataPath, offset: offset + UInt64(failure.written), errno: failure.errno) }
        // The chunk's bit, set after its data is written; it reaches the
        // file with the next ``recordMap()``. A write of one byte per chunk
        // cost a system call per chunk, thousands a second at small chunks.
        map.withLock { state in
            state.map.insert(index)
            let byte = index / 8
            state.unwritten = state.unwritten.map { min($0.lowerBound, byte)..<max($0.upperBound, byte + 1) } ?? byte..<(byte + 1)
        }
    }

    /// Writes the chunk map's changes since the last call to the `.have`
    /// file. A chunk whose bit has not reached the file yet when the process
    /// dies is fetched again, never trusted unverified.
    public func recordMap() throws(StorageError) {
        // Under the map's lock, so that two calls cannot write their bytes out of order.
        let failed: (offset: Int, errno: Int32)? = map.withLock { state in
            guard let range = state.unwritten else { return nil }
            state.unwritten = nil
            let bytes = state.map.bytes
            let n = bytes.withUnsafeBytes { pwrite(haveFD, $0.baseAddress! + range.lowerBound, range.count, off_t(range.lowerBound)) }
            return n == range.count ? nil : (range.lowerBound, errno)
        }
        if let failed { throw .writeFailed(path: havePath, offset: UInt64(failed.offset), errno: failed.errno) }
    }

    /// A reader of the verified chunks (for serving them to others).
    public var reader: FileChunkReader { FileChunkReader(fd: fd, path: dataPath, size: manifest.fileSize) }

    /// Renames the complete file to `destination` (atomically: the name shows
    /// the whole file or nothing) and removes the resume state. If
    /// `destination` exists with the same content, keeps it.
    ///
    /// The content is already proven: the manifest hashes to the content id,
    /// and every chunk matched its digest before it was written (or when it
    /// was read back from disk on resume). So this checks that every chunk is
    /// there, without reading it all again.
    ///
    /// - Parameter flush: whether to wait for the file to reach the disk
    ///   first. The downloader does not where it can tell a restart of the
    ///   machine afterwards (see ``BootID``): the fsync of a 1 GiB file took
    ///   0.9 s here, as long as fetching half of it.
    public func finish(as destination: String, flush: Bool) throws -> Manifest {
        guard have.isComplete else {
            throw ManifestError.sourceShorterThanDeclared(chunk: have.count - have.heldCount, expected: manifest.chunkCount, actual: have.heldCount)
        }
        if flush {
            guard fsync(fd) == 0 else { throw StorageError.writeFailed(path: dataPath, offset: 0, errno: errno) }
        }
        if FileManager.default.fileExists(atPath: destination) {
            let existing = try? ManifestBuilder().build(path: destination, chunkSize: manifest.chunkSize)
            guard existing?.contentID == manifest.contentID else { throw StorageError.nameTaken(path: destination) }
            discard()
            return manifest
        }
        guard rename(dataPath, destination) == 0 else { throw StorageError.cannotWrite(path: destination, errno: errno) }
        unlink(havePath)
        unlink(manifestPath)
        return manifest
    }

    /// Turns a complete file back into the partial download of `manifest`
    /// (a download whose bytes did not all reach the disk before the machine
    /// restarted): it moves under `.shoal/partial/` with `have` as its chunk
    /// map, so that fetching it again re-verifies those chunks and fetches
    /// only the others. Replaces any partial download of the same content.
    static func restore(file: String, manifest: Manifest, have: ChunkMap, folder: SharedFolder) throws(StorageError) {
        let base = folder.partialDirectory + "/" + manifest.contentID.hex
        for (path, bytes) in [(base + ".manifest", manifest.canonicalBytes), (base + ".have", have.bytes)] {
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw .cannotWrite(path: path, errno: errno) }
        }
        guard rename(file, base + ".part") == 0 else { throw .cannotWrite(path: base + ".part", errno: errno) }
    }

    /// Removes the resume state and the partial data.
    public func discard() {
        unlink(dataPath)
        unlink(havePath)
        unlink(manifestPath)
    }
}
