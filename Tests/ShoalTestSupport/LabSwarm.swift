import Foundation
import ShoalCore
import ShoalLab

/// `shoal tracker`, `shoal seed` and `shoal get` as processes on separate
/// test hosts of a ``NetworkLab``: the tracker on host `tracker`, each peer
/// on the host of its own name (user name = host name, password `pw-USER`).
/// Folders live under one temporary directory (namespaces share the file system).
public final class LabSwarm: @unchecked Sendable {
    public let lab: NetworkLab
    public let root: TemporaryDirectory
    public let tracker: ShoalProcess
    /// `HOST:PORT` of the tracker, on its lab address.
    public let trackerAddress: String
    private var peers: [String: ShoalProcess] = [:]
    private let lock = NSLock()

    /// Builds a lab with a `tracker` host plus `hosts`, and starts the tracker there.
    /// On failure everything made so far is torn down.
    public init(hosts: [String]) async throws {
        lab = try NetworkLab(hosts: ["tracker"] + hosts)
        do {
            root = try TemporaryDirectory("shoal-lab")
            let host = try lab.address(of: "tracker")
            tracker = try ShoalProcess(["tracker", "--host", host, "--port", "6969", "--db", root.file("tracker.sqlite"),
                                        "--password-rounds", "1000", "--probe-interval", "5", "--probe-timeout", "10"],
                                       launcher: try lab.prefix(for: "tracker"))
            guard let line = try await tracker.waitForLine({ _ in true }), line.hasPrefix("listening on") else {
                throw SwarmError(step: "the tracker did not start on \(host):6969", errors: tracker.errors)
            }
            trackerAddress = "\(host):6969"
        } catch {
            lab.teardown()
            throw error
        }
    }

    /// A folder for `user`, with `files` (name → bytes).
    public func folder(_ user: String, files: [String: [UInt8]] = [:]) throws -> String {
        let path = root.file(user)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, bytes) in files { _ = FileManager.default.createFile(atPath: path + "/" + name, contents: Data(bytes)) }
        return path
    }

    /// Runs `shoal ARGUMENTS` on `host` (a lab host name) with `user`'s password.
    public func process(_ arguments: [String], on host: String, user: String? = nil) throws -> ShoalProcess {
        try ShoalProcess(arguments, environment: user.map { ["SHOAL_PASSWORD": "pw-\($0)"] } ?? [:], launcher: try lab.prefix(for: host))
    }

    /// Registers `user` from its own host.
    public func register(_ user: String) async throws {
        let process = try process(["register", "--user", user, "--tracker", trackerAddress], on: user, user: user)
        let status = try await process.waitForExit(timeout: 30)
        guard status == 0 else { throw SwarmError(step: "registering \(user) ended with \(status.map(String.init) ?? "a timeout")", errors: process.errors) }
    }

    /// Registers `user` and starts `shoal seed` on its host and folder, with
    /// `extra` arguments; returns once it serves (at most 60 s).
    @discardableResult
    public func seed(_ user: String, extra: [String] = []) async throws -> ShoalProcess {
        try await register(user)
        let process = try process(["seed", "--user", user, "--dir", try folder(user), "--tracker", trackerAddress] + extra, on: user, user: user)
        guard try await process.waitForLine(timeout: 60, { $0.hasPrefix("serving on") }) != nil else {
            _ = try? await process.stop(signal: SIGKILL, timeout: 5)
            throw SwarmError(step: "\(user) did not start serving", errors: process.errors)
        }
        lock.withLock { peers[user] = process }
        return process
    }

    /// Starts `shoal get NAME --json` for `user` (registered already) on its host.
    public func get(_ name: String, user: String) throws -> ShoalProcess {
        let process = try process(["get", name, "--user", user, "--dir", try folder(user), "--tracker", trackerAddress, "--json"], on: user, user: user)
        lock.withLock { peers[user] = process }
        return process
    }

    /// The tracker's status document, asked from `host`.
    public func status(from host: String) async throws -> [String: Any] {
        let process = try process(["tracker", "status", "--tracker", trackerAddress, "--db", root.file("tracker.sqlite"), "--json"], on: host)
        _ = try await process.waitForExit(timeout: 30)
        return (try? JSONSerialization.jsonObject(with: Data(process.lines.joined(separator: "\n").utf8)) as? [String: Any]) ?? [:]
    }

    /// The counter `key` (`countDownloads`, `countFailures`) of every user the tracker lists, asked from `host`.
    public func counters(_ key: String, from host: String) async throws -> [String: Int] {
        DownloadWatch.counters(key, in: try await status(from: host))
    }

    /// The fraction of chunks `user`'s download has verified so far (from its resume map).
    public func progress(of user: String) -> Double {
        DownloadWatch.progress(ofFolder: root.file(user))
    }

    /// Waits (at most `timeout` seconds) until `user`'s download has `fraction` of its chunks.
    public func waitForProgress(of user: String, atLeast fraction: Double, timeout: Double = 60) async throws -> Bool {
        try await DownloadWatch.wait(forFolder: root.file(user), atLeast: fraction, timeout: timeout)
    }

    /// Kills whatever still runs in the lab, deletes it and removes the
    /// folders, at once: for a `defer` (``stop()`` is the graceful way).
    public func tearDown() {
        lab.teardown()
        root.remove()
    }

    /// Stops every process (SIGTERM, then SIGKILL after 10 s), tears the lab
    /// down (killing whatever is left in it) and removes the folders.
    public func stop() async {
        for process in lock.withLock({ Array(peers.values) }) { _ = try? await process.stop(timeout: 10) }
        _ = try? await tracker.stop(timeout: 10)
        lab.teardown()
        root.remove()
    }
}
