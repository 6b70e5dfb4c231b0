import Foundation
import Logging
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalTestSupport

/// A tracker and peers in this process, on loopback, each peer with its own folder.
final class TestSwarm: @unchecked Sendable {
    let tracker: TestTracker
    let root: TemporaryDirectory
    let log = CapturedLog()
    var peers: [Peer] = []

    init() async throws {
        tracker = try await TestTracker.start()
        root = try TemporaryDirectory("shoal-swarm")
    }

    var endpoint: Endpoint { Endpoint(host: "127.0.0.1", port: tracker.port) }

    /// A folder for `user` holding `files`.
    func folder(_ user: String, files: [String: [UInt8]] = [:]) throws -> String {
        let path = root.file(user)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, bytes) in files { _ = FileManager.default.createFile(atPath: path + "/" + name, contents: Data(bytes)) }
        return path
    }

    /// Registers `user` and starts a peer on `folder`.
    func peer(_ user: String, folder: String, encrypt: Bool = false, configure: (inout Downloader.Configuration) -> Void = { _ in }) async throws -> Peer {
        try await TrackerSession.register(endpoint: endpoint, trust: tracker.trust, user: user, password: "pw-\(user)")
        return try await start(user, folder: folder, encrypt: encrypt, configure: configure)
    }

    /// Starts a peer for an existing account.
    func start(_ user: String, folder: String, encrypt: Bool = false, configure: (inout Downloader.Configuration) -> Void = { _ in }) async throws -> Peer {
        // Production timeouts: the suite runs in parallel on two cores, and a
        // busy seeder must not look dead. Tests of timeouts set their own.
        var configuration = Downloader.Configuration()
        configure(&configuration)
        let peer = try await Peer.start(directory: folder, tracker: TrackerAddresses(endpoint), trust: tracker.trust, user: user, password: "pw-\(user)", encrypt: encrypt,
                                        listen: Endpoint(host: "127.0.0.1", port: 0), downloadConfiguration: configuration, logger: log.logger(label: "peer.\(user)"))
        peers.append(peer)
        return peer
    }

    func stop() async {
        for peer in peers { await peer.stop() }
        await tracker.stopAndRemove()
        root.remove()
    }
}

/// Deterministic random bytes (eight at a time: fast even in a debug build).
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SeededGenerator(seed: seed)
    var words = [UInt64](repeating: 0, count: (count + 7) / 8)
    for i in words.indices { words[i] = generator.next() }
    return words.withUnsafeBytes { Array($0.prefix(count)) }
}

/// SHA-256 of a file's bytes, hex.
func sha256(ofFile path: String) -> String? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return ChunkDigest(hashing: [UInt8](data)).hex
}
