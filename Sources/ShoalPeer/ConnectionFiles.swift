#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import Synchronization

/// The files one peer connection sends chunks from with `sendfile`, each
/// through a descriptor of its own: a `FileRegion` needs an `NIOFileHandle`,
/// and NIO lets one user at a time hold each. The descriptor is a duplicate
/// of the shared file's own, so it reads the very file that was hashed, even
/// if another has taken its name since.
///
/// Used by one task at a time: the connection's answering task while it
/// runs, then the connection's own task, which calls ``closeAll()`` once the
/// answering task has ended and the connection has closed (its pending writes
/// failed or done). Hence `@unchecked Sendable`: ownership moves, never shared.
///
/// Descriptors are bounded, since anyone may connect and ask for chunks of
/// every shared file: at most ``connectionLimit`` per connection and
/// ``processLimit`` in all. Past either, ``region(of:offset:length:)``
/// returns nil and the chunk goes out from memory instead.
final class ConnectionFiles: @unchecked Sendable {
    /// Files one connection sends from with descriptors of its own, at most.
    static let connectionLimit = 8
    /// Such descriptors over every connection of the process, at most.
    static let processLimit = 256
    private static let openCount = Atomic<Int>(0)

    private struct Open {
        /// Kept alive so its identity is not reused while this entry stands.
        let reader: FileChunkReader
        let handle: NIOFileHandle
        let fd: Int32
    }

    private var open: [ObjectIdentifier: Open] = [:]

    /// `length` bytes at `offset` of the file `reader` has open, checked to
    /// be there: `sendfile` past the end of a file
    /// that shrank would send nothing, again and again. (A file cut between
    /// this check and the write still can; the downloader's request timeout,
    /// 10 s, then closes the connection, which ends it.)
    /// Nil when no descriptor may be opened for it.
    func region(of reader: FileChunkReader, offset: UInt64, length: Int) throws(StorageError) -> FileRegion? {
        let key = ObjectIdentifier(reader)
        let path = reader.path
        let file: Open
        if let known = open[key] {
            file = known
        } else {
            guard open.count < Self.connectionLimit else { return nil }
            guard Self.openCount.wrappingAdd(1, ordering: .relaxed).newValue <= Self.processLimit else {
                Self.openCount.wrappingSubtract(1, ordering: .relaxed)
                return nil
            }
            let copy = fcntl(reader.fd, F_DUPFD_CLOEXEC, 0)
            guard copy >= 0 else {
                Self.openCount.wrappingSubtract(1, ordering: .relaxed)
                throw .cannotOpen(path: path, errno: errno)
            }
            file = Open(reader: reader, handle: NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: copy), fd: copy)
            open[key] = file
        }
        var info = stat()
        guard fstat(file.fd, &info) == 0 else { throw .readFailed(path: path, offset: offset, errno: errno) }
        let needed = offset + UInt64(length)
        guard UInt64(info.st_size) >= needed else { throw .fileShrank(path: path, size: UInt64(info.st_size), needed: needed) }
        return FileRegion(fileHandle: file.handle, readerIndex: Int(offset), endIndex: Int(needed))
    }

    /// Closes every descriptor.
    func closeAll() {
        for file in open.values { try? file.handle.close() }
        Self.openCount.wrappingSubtract(open.count, ordering: .relaxed)
        open = [:]
    }
}
