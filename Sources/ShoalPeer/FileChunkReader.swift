#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ShoalCore

/// Reads a file's bytes with `pread`, safe to call from many threads at once.
/// The reader owns its descriptor and closes it when released.
public final class FileChunkReader: ChunkReader, @unchecked Sendable {
    // `pread` on one descriptor is thread-safe; `fd` never changes after init.
    let fd: Int32
    private let ownsDescriptor: Bool
    /// The file's path, for messages.
    public let path: String
    /// The file's size when it was opened.
    public let size: UInt64

    /// The file's status when it was opened (from `fstat` of the descriptor).
    let status: stat
    /// Which file this is (device and inode), whatever name it has now.
    public var identity: FileIdentity { FileIdentity(status) }

    /// Opens `path` for reading. Follows symbolic links: for files the user
    /// names. A shared folder's files are opened by ``SharedFolder/open(_:)``.
    public convenience init(path: String) throws(StorageError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        try self.init(owning: fd, path: path)
    }

    /// Takes `fd`, just opened, and checks with `fstat` that it is a regular
    /// file; closes it and throws if not.
    init(owning fd: Int32, path: String) throws(StorageError) {
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw .cannotOpen(path: path, errno: code)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .notARegularFile(path: path)
        }
        self.fd = fd
        self.ownsDescriptor = true
        self.path = path
        self.size = UInt64(info.st_size)
        self.status = info
    }

    /// A reader over a descriptor someone else owns (and keeps open while this is used).
    public init(fd: Int32, path: String, size: UInt64) {
        self.fd = fd
        self.ownsDescriptor = false
        self.path = path
        self.size = size
        var info = stat()
        _ = fstat(fd, &info)
        self.status = info
    }

    deinit { if ownsDescriptor { close(fd) } }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw StorageError.readFailed(path: path, offset: offset, errno: errno)
        }
    }
}

/// A file's device and inode: two descriptors with the same identity read the same file.
public struct FileIdentity: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}
