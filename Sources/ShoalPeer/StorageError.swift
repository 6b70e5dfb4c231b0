#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What went wrong with a file on this machine's disk.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, errno: Int32)
    case notARegularFile(path: String)
    /// Shoal never follows a symbolic link in the folder or its `.shoal/`.
    case symbolicLink(path: String)
    case readFailed(path: String, offset: UInt64, errno: Int32)
    case notAFolder(path: String)
    case cannotWrite(path: String, errno: Int32)
    case writeFailed(path: String, offset: UInt64, errno: Int32)
    case nameTaken(path: String)
    case corruptResumeState(path: String, reason: String)
    case fileShrank(path: String, size: UInt64, needed: UInt64)

    public var description: String {
        switch self {
        case let .cannotOpen(path, code):
            return "cannot open \(path): \(Self.reason(code)); check that it exists and is readable"
        case let .notARegularFile(path):
            return "\(path) is not a regular file; only regular files can be shared"
        case let .symbolicLink(path):
            return "\(path) is a symbolic link; Shoal shares and writes only files inside the folder, never through a link: replace it with the file itself"
        case let .readFailed(path, offset, code):
            return "reading \(path) at byte \(offset) failed: \(Self.reason(code))"
        case let .notAFolder(path):
            return "\(path) is not a folder; give the folder to share and download into"
        case let .cannotWrite(path, code):
            return "cannot write \(path): \(Self.reason(code)); check the folder's permissions and free space"
        case let .writeFailed(path, offset, code):
            return "writing \(path) at byte \(offset) failed: \(Self.reason(code)); free some space or fix the permissions, then run the download again: verified chunks are kept"
        case let .nameTaken(path):
            return "a different file already exists at \(path); move it away or rename it, then download again"
        case let .corruptResumeState(path, reason):
            return "the resume state \(path) is unusable (\(reason)); it was discarded and the download starts over"
        case let .fileShrank(path, size, needed):
            return "\(path) is \(size) bytes now, shorter than the \(needed) needed: it changed on disk since this peer opened it; restart the peer to share it as it is now"
        }
    }

    static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }
}
