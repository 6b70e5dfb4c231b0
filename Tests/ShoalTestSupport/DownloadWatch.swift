import Foundation
import ShoalCore

/// What a test can read of a `shoal` process's download and of a tracker's
/// status document from outside the process: shared by ``ProcessSwarm`` and
/// ``LabSwarm``.
public enum DownloadWatch {
    /// The fraction of chunks the download in `folder` has verified so far
    /// (from its resume map); 0 before it starts.
    public static func progress(ofFolder folder: String) -> Double {
        let partial = folder + "/.shoal/partial"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: partial),
              let have = names.first(where: { $0.hasSuffix(".have") }),
              let manifestName = names.first(where: { $0.hasSuffix(".manifest") }),
              let bits = FileManager.default.contents(atPath: partial + "/" + have),
              let manifestBytes = FileManager.default.contents(atPath: partial + "/" + manifestName),
              let manifest = try? Manifest(canonicalBytes: [UInt8](manifestBytes)), manifest.chunkCount > 0 else { return 0 }
        return Double(bits.reduce(0) { $0 + $1.nonzeroBitCount }) / Double(manifest.chunkCount)
    }

    /// The resume map of the download in `folder`: one bit per verified chunk.
    public static func held(inFolder folder: String) -> [UInt8] {
        let partial = folder + "/.shoal/partial"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: partial),
              let have = names.first(where: { $0.hasSuffix(".have") }),
              let bits = FileManager.default.contents(atPath: partial + "/" + have) else { return [] }
        return [UInt8](bits)
    }

    /// Waits (polling, at most `timeout` seconds) until the download in
    /// `folder` holds every chunk set in `map`; false if it did not.
    public static func wait(forFolder folder: String, toHold map: [UInt8], timeout: Double) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let held = held(inFolder: folder)
            if held.count >= map.count, zip(map, held).allSatisfy({ $0 & ~$1 == 0 }) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// Waits (polling, at most `timeout` seconds) until the download in `folder` has `fraction` of its chunks.
    public static func wait(forFolder folder: String, atLeast fraction: Double, timeout: Double) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if progress(ofFolder: folder) >= fraction { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    /// The counter `key` (`countDownloads`, `countFailures`) of each peer in a
    /// tracker's status document whose user name starts with `prefix`.
    public static func counters(_ key: String, in status: [String: Any], ofUsersStartingWith prefix: String = "") -> [String: Int] {
        let peers = status["peers"] as? [[String: Any]] ?? []
        return Dictionary(peers.compactMap { peer in
            guard let user = peer["user"] as? String, user.hasPrefix(prefix), let count = peer[key] as? Int else { return nil }
            return (user, count)
        }, uniquingKeysWith: max)
    }
}
