import Foundation
import ShoalCore
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// What each change of the registry marks as touched: the contents and the
/// names whose `details` may read differently, and nothing else, so that a
/// cached reply about another file stays (``DetailsCache``) and a reply
/// about a changed one never does.
@Suite("What a registry change touches")
struct RegistryTouchesTests {
    let a = SessionToken(value: "a"), b = SessionToken(value: "b"), c = SessionToken(value: "c")
    let m1 = sampleManifest(1), m2 = sampleManifest(2)

    func peer(_ user: String, connection: UInt64) -> TrackerRegistry.Peer {
        TrackerRegistry.Peer(user: user, host: "127.0.0.1", port: 9000, connection: connection, countDownloads: 0, countFailures: 0, bytesServed: 0)
    }

    func file(_ name: String, _ m: Manifest) -> AnnouncedFile {
        AnnouncedFile(name: name, contentID: m.contentID, manifest: ManifestPayload(m))
    }

    func expectTouched(_ registry: inout TrackerRegistry, contents: Set<ContentID>, names: Set<String>,
                       _ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation) {
        let touched = registry.takeTouched()
        #expect(touched.contents == contents, comment, sourceLocation: sourceLocation)
        #expect(Set(touched.names.map(\.value)) == names, comment, sourceLocation: sourceLocation)
    }

    @Test func eachChangeTouchesWhatItsDetailsShow() throws {
        var registry = TrackerRegistry()
        _ = try registry.login(token: a, peer: peer("alice", connection: 1))
        _ = try registry.login(token: b, peer: peer("bob", connection: 2))
        expectTouched(&registry, contents: [], names: [], "a login without holdings shows nowhere")

        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("x.bin", m1)]))
        expectTouched(&registry, contents: [m1.contentID], names: ["x.bin"], "alice's announce")
        _ = try registry.announce(b, Announce(token: "", replace: true, files: [file("y.bin", m2)]))
        expectTouched(&registry, contents: [m2.contentID], names: ["y.bin"], "bob's announce leaves x.bin alone")

        registry.setCounters(user: "alice", downloads: 3, failures: 1, bytesServed: 1000)
        expectTouched(&registry, contents: [m1.contentID], names: [], "alice's counters show where she is a holder")
        registry.setCounters(user: "alice", downloads: 3, failures: 1, bytesServed: 1000)
        expectTouched(&registry, contents: [], names: [], "the same counters again change nothing")
        registry.setCounters(user: "alice", downloads: 2, failures: 0, bytesServed: 500)
        expectTouched(&registry, contents: [], names: [], "counters read before the last ones change nothing")
        #expect(registry.peer(a).map { [$0.countDownloads, $0.countFailures, Int($0.bytesServed)] } == [3, 1, 1000])

        registry.setKeyFingerprint(b, String(repeating: "ab", count: 32))
        expectTouched(&registry, contents: [m2.contentID], names: [], "bob's key shows where he is a holder")

        _ = try registry.announce(b, Announce(token: "", replace: true, files: [file("y.bin", m2), file("x.bin", m1)]))
        expectTouched(&registry, contents: [m1.contentID, m2.contentID], names: ["x.bin", "y.bin"],
                      "bob joins x.bin; his y.bin holding is set again")

        _ = try registry.announce(a, Announce(token: "", replace: true, files: [file("z.bin", m1)]))
        expectTouched(&registry, contents: [m1.contentID], names: ["x.bin", "z.bin"], "alice renames her copy")

        _ = try registry.login(token: c, peer: peer("carol", connection: 3))
        _ = registry.takeTouched()
        registry.logout(b)
        expectTouched(&registry, contents: [m1.contentID, m2.contentID], names: ["x.bin", "y.bin"],
                      "bob's logout withdraws both (and forgets m2, which nobody else holds)")
        #expect(throws: TrackerError.self) { try registry.wireDetails(c, name: "y.bin", contentID: nil) }
    }
}
