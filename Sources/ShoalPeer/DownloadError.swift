import ShoalCore

/// Why a download stopped. Verified chunks stay on disk: running it again resumes.
public enum DownloadError: Error, Sendable, CustomStringConvertible {
    case invalidName(String, NameError)
    case notFound(String)
    case noHolders(String)
    case holdersGone(name: String, missing: Int)
    case storage(StorageError)
    case corrupt(String)
    case tracker(String)

    public var description: String {
        switch self {
        case let .invalidName(name, error): "cannot download \(name.debugDescription): \(error)"
        case let .notFound(name): "no connected peer shares a file named \(name.debugDescription); list the files to see what is available"
        case let .noHolders(name): "nobody who shares \(name.debugDescription) can be reached right now; try again later"
        case let .holdersGone(name, missing): "every holder of \(name.debugDescription) left or failed with \(missing) chunk\(missing == 1 ? "" : "s") still missing; run the download again later: verified chunks are kept"
        case let .storage(error): error.description
        case let .corrupt(reason): "the assembled file does not match its manifest (\(reason)); it was discarded, run the download again"
        case let .tracker(reason): "the tracker could not be asked: \(reason)"
        }
    }
}
