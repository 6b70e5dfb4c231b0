import Foundation
import ShoalNet
import ShoalPeer
import ShoalTestSupport
import Testing

/// The known-trackers file: lines, comments, and a broken line.
@Suite("known trackers file")
struct KnownTrackersTests {
    /// Each tracker is found by its address as given; comments and other trackers are skipped.
    @Test func findsByAddress() throws {
        let folder = try TemporaryDirectory("shoal-known")
        defer { folder.remove() }
        let file = KnownTrackers(path: folder.file("known_trackers"))
        let a = try TLSIdentity.generate(commonName: "a").fingerprint
        let b = try TLSIdentity.generate(commonName: "b").fingerprint
        #expect(try file.fingerprint(for: Endpoint(host: "127.0.0.1", port: 6969)) == nil, "no file yet")
        try "# trackers I know\n127.0.0.1:6970 \(a.grouped)\n".write(toFile: file.path, atomically: true, encoding: .utf8)
        try file.pin(b, for: Endpoint(host: "::1", port: 6969))
        #expect(try file.fingerprint(for: Endpoint(host: "127.0.0.1", port: 6970)) == a)
        #expect(try file.fingerprint(for: Endpoint(host: "::1", port: 6969)) == b)
        #expect(try file.fingerprint(for: Endpoint(host: "127.0.0.1", port: 6969)) == nil)
        #expect(try String(contentsOfFile: file.path, encoding: .utf8).hasSuffix("[::1]:6969 \(b.hex)\n"))
    }

    /// A line for the tracker that is not `HOST:PORT FINGERPRINT` is an error naming the line, not a silent first use.
    @Test func brokenLineIsAnError() throws {
        let folder = try TemporaryDirectory("shoal-known")
        defer { folder.remove() }
        let file = KnownTrackers(path: folder.file("known_trackers"))
        try "127.0.0.1:6969\n".write(toFile: file.path, atomically: true, encoding: .utf8)
        #expect(throws: KnownTrackersError.malformedLine(path: file.path, line: 1)) {
            try file.fingerprint(for: Endpoint(host: "127.0.0.1", port: 6969))
        }
    }
}
