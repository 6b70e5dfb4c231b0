#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShoalCore
import Synchronization

/// A peer's folder: the regular files directly inside it that have valid
/// names, each with its manifest. Shoal's own state lives in the hidden
/// `.shoal/` subfolder (never shared): the manifest cache, partial downloads.
///
/// Only names are ever taken from the network, and only names that pass
/// ``FileName`` (no `/`, no `..`, no hidden files): every path is the folder
/// joined with such a name, so nothing outside the folder is ever read or
/// written. Symbolic links are not followed or shared: files are opened
/// relative to the folder's own descriptor with `O_NOFOLLOW`, checked with
/// `fstat` on the descriptor opened, and that very descriptor is the one
/// hashed and served (``Entry/reader``). A link swapped in after a scan is
/// never read: the next scan refuses it.
public final class SharedFolder: Sendable {
    /// The folder's absolute path.
    public let path: String
    /// `.shoal/` inside it.
    public var stateDirectory: String { path + "/.shoal" }
    /// Where partial downloads live.
    public var partialDirectory: String { stateDirectory + "/partial" }
    private var cachePath: String { stateDirectory + "/manifests.json" }
    /// One reader-modifier-writer of the manifest cache at a time.
    private let cacheLock = Mutex(())
    /// The folder, open: its files are opened relative to it.
    private let directory: Int32
    /// `.shoal/partial/`, open (each part opened beneath it without following a link).
    let partialDirectoryDescriptor: Int32

    /// A shared file.
    public struct Entry: Sendable, Equatable {
        public var name: FileName
        public var manifest: Manifest
        public var path: String
        /// The file, open: the descriptor that was checked (and hashed, if the
        /// scan hashed it). Chunks are served from it, never from a new open of
        /// the path, which could meet another file (or a link) by then.
        public var reader: FileChunkReader

        public init(name: FileName, manifest: Manifest, reader: FileChunkReader) {
            self.name = name
            self.manifest = manifest
            self.path = reader.path
            self.reader = reader
        }

        /// The same name, manifest and file (device and inode).
        public static func == (a: Entry, b: Entry) -> Bool {
            a.name == b.name && a.manifest == b.manifest && a.path == b.path && a.reader.identity == b.reader.identity
        }
    }

    /// The chunk size new files are hashed with (nil: the rule of PROTOCOL.md, section 7.2).
    public let chunkSize: UInt32?

    /// Opens `path`, creating `.shoal/` in it; throws if it is not a writable folder.
    /// Files are hashed into chunks of `chunkSize` bytes, or by the size rule when nil.
    public init(path: String, chunkSize: UInt32? = nil) throws(StorageError) {
        self.chunkSize = chunkSize
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var info = stat()
        guard stat(absolute, &info) == 0 else { throw .cannotOpen(path: absolute, errno: errno) }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { throw .notAFolder(path: absolute) }
        self.path = absolute
        let directory = Glibc.open(absolute, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw .cannotOpen(path: absolute, errno: errno) }
        do throws(StorageError) {
            let state = try Self.openSubfolder(".shoal", in: directory, path: absolute + "/.shoal")
            defer { close(state) }
            self.partialDirectoryDescriptor = try Self.openSubfolder("partial", in: state, path: absolute + "/.shoal/partial")
        } catch {
            close(directory)
            throw error
        }
        self.directory = directory
    }

    deinit {
        close(directory)
        close(partialDirectoryDescriptor)
    }

    /// Creates (if missing) and opens the folder `name` beneath `parent`, refusing a link.
    private static func openSubfolder(_ name: String, in parent: Int32, path: String) throws(StorageError) -> Int32 {
        if mkdirat(parent, name, 0o755) != 0 && errno != EEXIST { throw .cannotWrite(path: path, errno: errno) }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw errno == ELOOP ? .symbolicLink(path: path) : .cannotWrite(path: path, errno: errno) }
        return fd
    }

    /// Opens the folder's file `name` for reading: relative to the folder,
    /// never through a symbolic link, and only if the descriptor opened is a
    /// regular file.
    public func openFile(_ name: FileName) throws(StorageError) -> FileChunkReader {
        let full = file(name)
        // O_NONBLOCK: opening a FIFO put in a file's place must not wait for a writer.
        let fd = openat(directory, name.value, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw errno == ELOOP ? .symbolicLink(path: full) : .cannotOpen(path: full, errno: errno) }
        let reader = try FileChunkReader(owning: fd, path: full)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return reader
    }

    /// The path of `name` inside the folder.
    public func file(_ name: FileName) -> String { path + "/" + name.value }

    /// Scans the folder and returns its shareable files with their manifests,
    /// hashing only files that are new or changed since the last scan.
    ///
    /// A download that may not have reached the disk before the machine
    /// restarted (see ``BootID``) is checked against the manifest it was
    /// downloaded for. Whole, it is shared as before; damaged, it is not
    /// shared: it goes back to `.shoal/partial/` with the chunks that still
    /// verify, so fetching it again fetches only the lost ones, and `notice`
    /// says so.
    ///
    /// - Parameters:
    ///   - progress: called with each file's name before it is hashed.
    ///   - notice: called with what the user should know.
    public func scan(progress: (@Sendable (String) -> Void)? = nil, notice: (@Sendable (String) -> Void)? = nil) throws -> [Entry] {
        try cacheLock.withLock { _ in try scanLocked(progress: progress, notice: notice) }
    }

    private func scanLocked(progress: (@Sendable (String) -> Void)?, notice: (@Sendable (String) -> Void)?) throws -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        var cache = ManifestCache.load(from: cachePath)
        let boot = BootID.current
        var entries: [Entry] = []
        var seen = Set<String>()
        for raw in names.sorted() {
            guard let name = try? FileName(raw) else { continue }
            let full = file(name)
            let reader: FileChunkReader
            do throws(StorageError) {
                reader = try openFile(name)
            } catch {
                switch error {
                case .symbolicLink, .notARegularFile, .cannotOpen(_, ENOENT): continue
                default: throw error
                }
            }
            let stamp = ManifestCache.Stamp(reader.status)
            seen.insert(raw)
            if let manifest = cache.manifest(for: raw, stamp: stamp, boot: boot), chunkSize == nil || manifest.chunkSize == chunkSize {
                entries.append(Entry(name: name, manifest: manifest, reader: reader))
                continue
            }
            progress?(raw)
            if let expected = cache.unflushedAfterRestart(raw, boot: boot), expected.fileSize == stamp.size {
                let found = try ManifestBuilder().build(fileSize: reader.size, chunkSize: expected.chunkSize, reader: reader)
                if found.contentID == expected.contentID {
                    cache.store(expected, for: raw, stamp: stamp)
                    entries.append(Entry(name: name, manifest: expected, reader: reader))
                } else {
                    var have = ChunkMap(count: expected.chunkCount)
                    for index in 0..<expected.chunkCount where found.digests[index] == expected.digests[index] { have.insert(index) }
                    try PartialDownload.restore(file: full, manifest: expected, have: have, folder: self)
                    seen.remove(raw)
                    notice?("\(raw) lost \(expected.chunkCount - have.heldCount) of its \(expected.chunkCount) chunks when the machine restarted before they reached the disk; it is no longer shared, and downloading it again fetches only those")
                }
                continue
            }
            let manifest = try ManifestBuilder().build(fileSize: reader.size, chunkSize: chunkSize, reader: reader)
            cache.store(manifest, for: raw, stamp: stamp)
            entries.append(Entry(name: name, manifest: manifest, reader: reader))
        }
        cache.keep(only: seen)
        cache.save(to: cachePath)
        return entries
    }
}

extension SharedFolder {
    /// Records a file's manifest (a download just finished), so the next scan
    /// does not hash it again.
    ///
    /// - Parameter boot: the ``BootID`` the file was written in, if it may not
    ///   be on disk yet: after the machine restarts, the next scan checks it
    ///   again rather than trust this record. Nil once it is flushed.
    public func remember(_ entry: Entry, unflushedIn boot: String? = nil) {
        var info = stat()
        guard fstat(entry.reader.fd, &info) == 0 else { return }
        cacheLock.withLock { _ in
            var cache = ManifestCache.load(from: cachePath)
            cache.store(entry.manifest, for: entry.name.value, stamp: ManifestCache.Stamp(info), unflushedIn: boot)
            cache.save(to: cachePath)
        }
    }

    /// Waits until `entry`'s bytes are on disk, then records that its
    /// manifest holds whatever happens to the machine, if the file is still
    /// the one recorded (it may have been replaced meanwhile).
    public func flush(_ entry: Entry) throws(StorageError) {
        let current = try openFile(entry.name)
        guard current.identity == entry.reader.identity else { return }
        guard fdatasync(current.fd) == 0 else { throw .writeFailed(path: entry.path, offset: 0, errno: errno) }
        let stamp = ManifestCache.Stamp(current.status)
        cacheLock.withLock { _ in
            var cache = ManifestCache.load(from: cachePath)
            guard cache.markFlushed(entry.name.value, stamp: stamp, contentID: entry.manifest.contentID) else { return }
            cache.save(to: cachePath)
        }
    }
}

/// Manifests of the folder's files keyed by name, size and modification time,
/// so a restart does not hash everything again.
struct ManifestCache: Codable {
    struct Stamp: Codable, Equatable {
        var size: UInt64
        var modified: Double

        init(_ info: stat) {
            size = UInt64(info.st_size)
            modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        }
    }

    struct Item: Codable {
        var stamp: Stamp
        var contentID: ContentID
        var fileSize: UInt64
        var chunkSize: UInt32
        var digests: String
        /// The boot the file was written in, while it may not be on disk yet.
        var unflushedIn: String?

        var manifest: Manifest? {
            guard let bytes = Data(base64Encoded: digests),
                  let manifest = try? Manifest(fileSize: fileSize, chunkSize: chunkSize, concatenatedDigests: bytes),
                  manifest.contentID == contentID else { return nil }
            return manifest
        }
    }

    /// 2 since items may be marked `unflushedIn`: a version-1 reader would
    /// trust them after a restart, so it must not read this format. Version 1
    /// files read fine (none of their items is marked).
    var version = 2
    var files: [String: Item] = [:]

    static func load(from path: String) -> ManifestCache {
        guard let data = FileManager.default.contents(atPath: path),
              var cache = try? JSONDecoder().decode(ManifestCache.self, from: data), cache.version == 1 || cache.version == 2 else { return ManifestCache() }
        cache.version = 2
        return cache
    }

    /// The manifest recorded for `name`, if the file is as recorded and,
    /// were it not flushed to disk, the machine has not restarted since.
    func manifest(for name: String, stamp: Stamp, boot: String?) -> Manifest? {
        guard let item = files[name], item.stamp == stamp else { return nil }
        if let unflushed = item.unflushedIn, unflushed != boot { return nil }
        return item.manifest
    }

    /// The manifest `name` was downloaded for, if it was recorded before it
    /// reached the disk and the machine has restarted since.
    func unflushedAfterRestart(_ name: String, boot: String?) -> Manifest? {
        guard let item = files[name], let unflushed = item.unflushedIn, unflushed != boot else { return nil }
        return item.manifest
    }

    /// Clears the mark of `name` if its record still matches `stamp` and
    /// `contentID`; returns whether it changed anything.
    mutating func markFlushed(_ name: String, stamp: Stamp, contentID: ContentID) -> Bool {
        guard var item = files[name], item.stamp == stamp, item.contentID == contentID, item.unflushedIn != nil else { return false }
        item.unflushedIn = nil
        files[name] = item
        return true
    }

    mutating func store(_ manifest: Manifest, for name: String, stamp: Stamp, unflushedIn boot: String? = nil) {
        files[name] = Item(stamp: stamp, contentID: manifest.contentID, fileSize: manifest.fileSize, chunkSize: manifest.chunkSize,
                           digests: Data(manifest.concatenatedDigests).base64EncodedString(), unflushedIn: boot)
    }

    mutating func keep(only names: Set<String>) {
        files = files.filter { names.contains($0.key) }
    }

    func save(to path: String) {
        guard let data = try? JSONEncoder().encode(self) else { return }
        let temporary = path + ".tmp"
        if FileManager.default.createFile(atPath: temporary, contents: data) { rename(temporary, path) }
    }
}
