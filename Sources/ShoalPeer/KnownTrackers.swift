import Foundation
import ShoalNet

/// The trackers this user has met, each with the SHA-256 fingerprint of its
/// certificate, like ssh's `known_hosts`: one line per tracker,
/// `HOST:PORT FINGERPRINT` (64 hex digits); `#` starts a comment.
///
/// The first connection to a tracker not in the file pins the fingerprint it
/// presents (trust on first use); every later one must present the same.
/// A tracker whose key really changed is met again by removing its line.
public struct KnownTrackers: Sendable {
    /// The file: `$SHOAL_KNOWN_TRACKERS`, or `~/.shoal/known_trackers`.
    public let path: String

    public init(path: String) { self.path = path }

    /// The default file: `$SHOAL_KNOWN_TRACKERS` if set, else `~/.shoal/known_trackers`.
    public static var defaultPath: String {
        if let path = ProcessInfo.processInfo.environment["SHOAL_KNOWN_TRACKERS"], !path.isEmpty { return path }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".shoal/known_trackers").path
    }

    /// The fingerprint pinned for `endpoint`, if any.
    public func fingerprint(for endpoint: Endpoint) throws(KnownTrackersError) -> CertificateFingerprint? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, reason: error.localizedDescription)
        }
        let key = endpoint.description
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = fields.first, !first.hasPrefix("#"), String(first) == key else { continue }
            guard fields.count >= 2, let fingerprint = try? CertificateFingerprint(parsing: String(fields[1])) else {
                throw .malformedLine(path: path, line: number + 1)
            }
            return fingerprint
        }
        return nil
    }

    /// Adds a line pinning `fingerprint` for `endpoint` (creating the file and its folder, mode 0600).
    public func pin(_ fingerprint: CertificateFingerprint, for endpoint: Endpoint) throws(KnownTrackersError) {
        let folder = (path as NSString).deletingLastPathComponent
        do {
            if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
        } catch {
            throw .unwritable(path: path, reason: error.localizedDescription)
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .unwritable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let line = Array("\(endpoint) \(fingerprint.hex)\n".utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count else { throw .unwritable(path: path, reason: String(cString: strerror(errno))) }
    }
}

/// Why the known-trackers file could not be used.
public enum KnownTrackersError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case malformedLine(path: String, line: Int)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            "cannot read the known trackers file \(path) (\(reason)); fix its permissions or point SHOAL_KNOWN_TRACKERS/--known-trackers elsewhere"
        case let .unwritable(path, reason):
            "cannot record the tracker's fingerprint in \(path) (\(reason)); fix its permissions or point SHOAL_KNOWN_TRACKERS/--known-trackers elsewhere"
        case let .malformedLine(path, line):
            "line \(line) of \(path) is not `HOST:PORT FINGERPRINT`; fix or remove it"
        }
    }
}
