#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What went wrong with a file on this machine's disk.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, errno: Int32)
    case notARegularFile(path: String)
    case readFailed(path: String, offset: UInt64, errno: Int32)

    public var description: String {
        switch self {
        case let .cannotOpen(path, code):
            return "cannot open \(path): \(Self.reason(code)); check that it exists and is readable"
        case let .notARegularFile(path):
            return "\(path) is not a regular file; only regular files can be shared"
        case let .readFailed(path, offset, code):
            return "reading \(path) at byte \(offset) failed: \(Self.reason(code))"
        }
    }

    static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }
}
