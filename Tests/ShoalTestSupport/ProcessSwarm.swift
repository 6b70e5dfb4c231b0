import Foundation
import ShoalCore

/// `shoal tracker`, `shoal seed` and `shoal get` as separate processes on
/// loopback, each peer with its own folder under one temporary directory.
public final class ProcessSwarm: @unchecked Sendable {
    public let root: TemporaryDirectory
    public private(set) var tracker: ShoalProcess
    public private(set) var trackerPort: Int
    /// The tracker's certificate fingerprint, as it printed it; every process pins it.
    public private(set) var fingerprint: String
    public var address: String { "127.0.0.1:\(trackerPort)" }
    /// `--tracker ADDRESS --tracker-fingerprint FP`.
    public var trackerArguments: [String] { ["--tracker", address, "--tracker-fingerprint", fingerprint] }
    private var seeders: [String: ShoalProcess] = [:]
    private let lock = NSLock()

    /// Options added to the tracker's command line.
    private let trackerOptions: [String]

    /// A tracker (started with `trackerOptions` added) on a database in a new temporary directory.
    public init(trackerOptions: [String] = []) async throws {
        root = try TemporaryDirectory("shoal-transfer")
        self.trackerOptions = trackerOptions
        (tracker, trackerPort, fingerprint) = try await Self.startTracker(root: root, port: 0, options: trackerOptions)
    }

    private static func startTracker(root: TemporaryDirectory, port: Int, options: [String]) async throws -> (ShoalProcess, Int, String) {
        // Fast password hashing, unless `options` ask for other rounds.
        let rounds = options.contains("--password-rounds") ? [] : ["--password-rounds", "1000"]
        let process = try ShoalProcess(["tracker", "--port", "\(port)", "--db", root.file("tracker.sqlite")] + rounds +
                                       ["--probe-interval", "5", "--probe-timeout", "10"] + options)
        guard let line = try await process.waitForLine({ _ in true }), let bound = ShoalProcess.port(fromListeningLine: line) else {
            throw SwarmError(step: "the tracker did not start", errors: process.errors)
        }
        guard let fingerprint = try await process.waitForFingerprint() else {
            throw SwarmError(step: "the tracker printed no certificate fingerprint", errors: process.errors)
        }
        return (process, bound, fingerprint)
    }

    /// Kills the tracker (SIGKILL) and starts it again on the same port and database.
    public func restartTracker() async throws {
        _ = try await tracker.stop(signal: SIGKILL)
        try await startTrackerAgain()
    }

    /// Starts the tracker again, after it stopped, on the same port and database.
    public func startTrackerAgain() async throws {
        // Same database, so the same certificate beside it: peers keep their pin.
        let again = try await Self.startTracker(root: root, port: trackerPort, options: trackerOptions)
        guard again.2 == fingerprint else { throw SwarmError(step: "the restarted tracker has another fingerprint", errors: again.0.errors) }
        tracker = again.0
    }

    /// A folder for `user`, with `files`.
    public func folder(_ user: String, files: [String: [UInt8]] = [:]) throws -> String {
        let path = root.file(user)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: path + "/" + name)) }
        return path
    }

    public func register(_ user: String) async throws {
        let process = try ShoalProcess(["register", "--user", user] + trackerArguments, environment: ["SHOAL_PASSWORD": "pw-\(user)"])
        let status = try await process.waitForExit()
        guard status == 0 else { throw SwarmError(step: "registering \(user) ended with \(status.map(String.init) ?? "a timeout")", errors: process.errors) }
    }

    /// Registers `user` and starts `shoal seed` on its folder (with `extra`
    /// options); returns once it serves.
    @discardableResult
    public func seed(_ user: String, register: Bool = true, extra: [String] = []) async throws -> ShoalProcess {
        if register { try await self.register(user) }
        let process = try ShoalProcess(["seed", "--user", user, "--dir", try folder(user), "--listen", "127.0.0.1:0"] + trackerArguments + extra,
                                       environment: ["SHOAL_PASSWORD": "pw-\(user)"])
        guard try await process.waitForLine(timeout: 120, { $0.hasPrefix("serving on") }) != nil else {
            throw SwarmError(step: "\(user) did not start serving", errors: process.errors)
        }
        lock.withLock { seeders[user] = process }
        return process
    }

    /// Starts `shoal get NAME --json` for `user` (registered already).
    public func get(_ name: String, user: String, extra: [String] = []) throws -> ShoalProcess {
        try ShoalProcess(["get", name, "--user", user, "--dir", try folder(user), "--listen", "127.0.0.1:0", "--json"] + trackerArguments + extra,
                         environment: ["SHOAL_PASSWORD": "pw-\(user)"])
    }

    /// The result document of a finished `get`.
    public static func result(_ process: ShoalProcess) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(process.lines.joined(separator: "\n").utf8)) as? [String: Any]
    }

    /// The fraction of chunks a download in `user`'s folder has verified so far (from its resume map).
    public func progress(of user: String) -> Double {
        DownloadWatch.progress(ofFolder: root.file(user))
    }

    /// Waits until `user`'s download has at least `fraction` of its chunks (or the timeout passes).
    public func waitForProgress(of user: String, atLeast fraction: Double, timeout: Double = 60) async throws -> Bool {
        try await DownloadWatch.wait(forFolder: root.file(user), atLeast: fraction, timeout: timeout)
    }

    /// The tracker's status document.
    public func status() async throws -> [String: Any] {
        let process = try ShoalProcess(["tracker", "status", "--db", root.file("tracker.sqlite"), "--json"] + trackerArguments)
        _ = try await process.waitForExit()
        return (try? JSONSerialization.jsonObject(with: Data(process.lines.joined(separator: "\n").utf8)) as? [String: Any]) ?? [:]
    }

    /// The counter `key` (`countDownloads`, `countFailures`) of each connected
    /// user whose name starts with `prefix`, from the tracker's status.
    public func counters(_ key: String, ofUsersStartingWith prefix: String = "") async throws -> [String: Int] {
        DownloadWatch.counters(key, in: try await status(), ofUsersStartingWith: prefix)
    }

    public func seeder(_ user: String) -> ShoalProcess? { lock.withLock { seeders[user] } }

    /// Stops everything and removes the folders.
    public func stop() async {
        for process in lock.withLock({ Array(seeders.values) }) { _ = try? await process.stop() }
        _ = try? await tracker.stop()
        root.remove()
    }
}

/// SHA-256 of a file's bytes, hex; nil if unreadable.
public func fileSHA256(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    var hasher = StreamingSHA256()
    while let data = try? handle.read(upToCount: 4 << 20), !data.isEmpty { hasher.update(data) }
    return hasher.finalize()
}

/// Deterministic bytes: random, or log-like text.
public enum TestData {
    public static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(seed: seed)
        var words = [UInt64](repeating: 0, count: (count + 7) / 8)
        for i in words.indices { words[i] = generator.next() }
        return words.withUnsafeBytes { Array($0.prefix(count)) }
    }

    public static func text(_ count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count)
        var i = 0
        while out.count < count {
            out += Array("2026-11-27T12:\(String(format: "%02d", i / 60 % 60)):\(String(format: "%02d", i % 60))Z INFO [worker-\(i % 8)] GET /api/v1/files?id=\(i * 7919 % 100_000) status=200 bytes=\(i * 31 % 65536)\n".utf8)
            i += 1
        }
        return Array(out.prefix(count))
    }
}

/// A step of a swarm's setup that failed, with what the process said.
public struct SwarmError: Error, CustomStringConvertible {
    public let step: String
    public let errors: String
    public var description: String { "\(step); its stderr:\n\(errors)" }
}
