#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The secret that `status` must carry: 256 random bits, new at every start,
/// written to a file only the tracker's user can read (mode 0600), by default
/// `DATABASE-operator-token` beside the database. Whoever can read that file
/// is the operator; `shoal tracker status` reads it.
public enum OperatorToken {
    /// Makes a new token and writes it to `path` (replacing the file, never
    /// following a symlink there); returns it.
    public static func create(at path: String) throws(TrackerError) -> String {
        let token = SessionToken.random().value
        try write(token, to: path)
        return token
    }

    /// Writes `token` to a new file beside `path` with mode 0600, then renames it over `path`.
    static func write(_ token: String, to path: String) throws(TrackerError) {
        let temporary = path + ".\(getpid()).tmp"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .storage("cannot write the operator token file \(path): \(String(cString: strerror(errno)))") }
        let bytes = Array((token + "\n").utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fchmod(fd, 0o600) == 0 && fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .storage("cannot write the operator token file \(path): \(reason)")
        }
    }

    /// The token in the file at `path` (its first line, trimmed).
    /// Whether `given` is the token `expected`, in time that does not depend
    /// on where they differ: for `status` and the operator's web view alike.
    public static func matches(_ given: String, _ expected: String) -> Bool {
        let x = Array(given.utf8), y = Array(expected.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    public static func read(from path: String) throws -> String {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(whereSeparator: \.isNewline).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
    }
}
