import Foundation
import ShoalCore

/// The repository's `Fixtures/` folder: sample peer folders, golden frames and
/// manifests (written by `Fixtures/make_fixtures.py`, an independent Python
/// implementation of PROTOCOL.md).
public enum Fixtures {
    /// The absolute path of `Fixtures/`.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        // Tests/ShoalTestSupport/Fixtures.swift -> repository root
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Fixtures").path
    }()

    /// The absolute path of a fixture.
    public static func path(_ relative: String) -> String { root + "/" + relative }

    /// A fixture's bytes.
    public static func bytes(_ relative: String) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path(relative)) else {
            fatalError("fixture \(relative) is missing; run python3 Fixtures/make_fixtures.py")
        }
        return [UInt8](data)
    }

    /// One entry of `manifests/expected.json`.
    public struct Expected: Decodable, Sendable {
        public var contentID: String
        public var size: UInt64
        public var chunkSize: UInt32
        public var chunks: Int
    }

    /// `manifests/expected.json`: content ids computed by the Python generator.
    public static let expected: [String: Expected] = {
        try! JSONDecoder().decode([String: Expected].self, from: Data(bytes("manifests/expected.json")))
    }()

    /// The files of the sample peer folders, as `peer_N/name`.
    public static var peerFiles: [String] {
        expected.keys.filter { $0.hasPrefix("peer_") && !$0.contains("@") }.sorted()
    }
}
