import Foundation
import ShoalCore
import ShoalWire

/// Why a download stopped. Verified chunks stay on disk: running it again resumes.
public enum DownloadError: Error, Sendable, CustomStringConvertible {
    case invalidName(String, NameError)
    case notFound(String)
    case noHolders(String)
    case holdersGone(name: String, missing: Int)
    case storage(StorageError)
    case corrupt(String)
    case tracker(String)
    /// Several contents are shared under the name: the user must pick one.
    case ambiguous(name: String, choices: [FileDetail], more: Int?)
    case badContentID(String)
    case contentNotFound(name: String, content: String)

    public var description: String {
        switch self {
        case let .invalidName(name, error): "cannot download \(name.debugDescription): \(error)"
        case let .notFound(name): "no connected peer shares a file named \(name.debugDescription); list the files to see what is available"
        case let .noHolders(name): "nobody who shares \(name.debugDescription) can be reached right now; try again later"
        case let .holdersGone(name, missing): "every holder of \(name.debugDescription) left or failed with \(missing) chunk\(missing == 1 ? "" : "s") still missing; run the download again later: verified chunks are kept"
        case let .storage(error): error.description
        case let .corrupt(reason): "the assembled file does not match its manifest (\(reason)); it was discarded, run the download again"
        case let .tracker(reason): "the tracker could not be asked: \(reason)"
        case let .ambiguous(name, choices, more):
            "\(choices.count + (more ?? 0)) different files are shared as \(name.debugDescription); choose one by its content id (--content ID):\n"
                + choices.map { "  " + Self.describe($0) }.joined(separator: "\n")
                + (more.map { "\n  ... and \($0) more" } ?? "")
        case let .badContentID(content):
            "\(content.debugDescription) is not a content id: give its 64 hex digits, or at least the first 8"
        case let .contentNotFound(name, content):
            "no content \(content) is shared as \(name.debugDescription); list the file's details to see the contents it has"
        }
    }
}

extension DownloadError {
    /// One content of an ambiguous name, as a user chooses among them:
    /// content id, size, holders, who shared it first and when.
    public static func describe(_ detail: FileDetail) -> String {
        var parts = [String(detail.contentID.hex.prefix(16))]
        if let size = detail.size { parts.append("\(size) bytes") }
        let complete = detail.completeHolders ?? detail.holders.filter { $0.chunks == nil }.count
        let partial = detail.partialHolders ?? 0
        parts.append("\(complete) holder\(complete == 1 ? "" : "s")" + (partial > 0 ? " + \(partial) partial" : ""))
        if let who = detail.firstSharedBy {
            var shared = "first shared by \(who)"
            if let since = detail.since, since > 0 {
                let formatter = ISO8601DateFormatter()
                shared += " at " + formatter.string(from: Date(timeIntervalSince1970: since))
            }
            parts.append(shared)
        }
        return parts.joined(separator: ", ")
    }
}
