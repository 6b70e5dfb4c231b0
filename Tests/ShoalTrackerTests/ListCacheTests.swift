import Foundation
import NIOCore
import ShoalCore
import ShoalTestSupport
@testable import ShoalTracker
import ShoalWire
import Testing

/// The file list kept current by the changes themselves (``ListCache``):
/// after any sequence of announces, renames, partial maps, withdrawals and
/// logouts, it holds exactly the rows a full rebuild makes, and each of its
/// pages is byte for byte what ``FileList`` encodes.
@Suite("The list kept by the changes")
struct ListCacheTests {
    /// Names that sort by their bytes, not as Swift compares strings:
    /// precomposed and decomposed "é" are two files.
    /// A quote must be escaped in both row forms as Foundation escapes it.
    static let names = ["a.bin", "b.bin", "\u{e9}.txt", "e\u{301}.txt", "z", "Zeta", "log 2026.txt", "a.bin2", "say \"hi\".txt"]

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomChangesKeepTheRowsAFullRebuildMakes(seed: UInt64) async throws {
        var random = SeededGenerator(seed: seed)
        let manifests = (0..<6).map { sampleManifest(UInt8($0), chunks: 3) }
        var registry = TrackerRegistry()
        var cache = ListCache()
        var connected: [SessionToken] = []
        var announced = 0, mostRows = 0, partialRows = 0
        for step in 0..<400 {
            // Seconds of work in a debug build: let the other tests' tasks run meanwhile.
            if step % 10 == 0 { await Task.yield() }
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<2 where connected.count < 8:
                let token = SessionToken(value: "t\(step)")
                _ = try registry.login(token: token, peer: TrackerRegistry.Peer(user: "user\(step)", host: "127.0.0.1", port: 9000,
                                                                                connection: UInt64(step), countDownloads: 0, countFailures: 0, bytesServed: 0))
                connected.append(token)
            case 2 where !connected.isEmpty:
                registry.logout(connected.remove(at: Int.random(in: 0..<connected.count, using: &random)))
            default:
                guard let token = connected.randomElement(using: &random) else { continue }
                var files: [AnnouncedFile] = []
                for _ in 0..<Int.random(in: 0...3, using: &random) {
                    let m = manifests.randomElement(using: &random)!
                    let partial = Bool.random(using: &random)
                    files.append(AnnouncedFile(name: Self.names.randomElement(using: &random)!, contentID: m.contentID,
                                               manifest: ManifestPayload(m), have: partial ? [Int.random(in: 0..<3, using: &random)] : nil))
                }
                // Two holdings of one content under one name in one announce are refused: skip those.
                if (try? registry.announce(token, Announce(token: token.value, replace: Bool.random(using: &random), files: files))) != nil { announced += 1 }
            }
            let touched = registry.takeTouched()
            cache.update(touched: touched, rows: registry.listRows(touching: touched))
            let expected = registry.list()
            try #require(cache.rows == expected, "seed \(seed), step \(step)")
            mostRows = max(mostRows, expected.count)
            partialRows += expected.filter { $0.partialHolders > 0 }.count
            for pageSize in [1, 3, 100] {
                var after: ListCursor?
                var start = 0
                repeat {
                    let end = min(expected.count, start + pageSize)
                    let next = end < expected.count ? ListCursor(name: expected[end - 1].name, contentID: expected[end - 1].contentID) : nil
                    for compact in [false, true] {
                        let page = try cache.page(after: after, pageSize: pageSize, compact: compact)
                        let encoded = try FileList(files: Array(expected[start..<end]), next: next, compact: compact).frame(requestID: 0).payload
                        try #require(page == encoded, "seed \(seed), step \(step), page size \(pageSize) from row \(start), compact \(compact)")
                    }
                    after = next
                    start = end
                } while after != nil
            }
        }
        // The walk went through lists worth checking.
        #expect(announced >= 100 && mostRows >= 8 && partialRows > 0, "\(announced) announces, at most \(mostRows) rows, \(partialRows) with partial holders")
    }

    /// A second holder of a content, under another name, changes the
    /// holder count shown in the first name's row too.
    @Test func aHolderUnderAnotherNameCountsInEveryRowOfTheContent() throws {
        let m = sampleManifest(7, chunks: 2)
        var registry = TrackerRegistry()
        var cache = ListCache()
        let a = SessionToken(value: "a"), b = SessionToken(value: "b")
        for (token, user) in [(a, "alice"), (b, "bob")] {
            _ = try registry.login(token: token, peer: TrackerRegistry.Peer(user: user, host: "127.0.0.1", port: 9000, connection: 1,
                                                                            countDownloads: 0, countFailures: 0, bytesServed: 0))
        }
        func sync() {
            let touched = registry.takeTouched()
            cache.update(touched: touched, rows: registry.listRows(touching: touched))
        }
        _ = try registry.announce(a, Announce(token: "a", replace: true, files: [AnnouncedFile(name: "one.bin", contentID: m.contentID, manifest: ManifestPayload(m))]))
        sync()
        _ = try registry.announce(b, Announce(token: "b", replace: true, files: [AnnouncedFile(name: "two.bin", contentID: m.contentID, manifest: ManifestPayload(m))]))
        sync()
        #expect(cache.rows.map(\.name) == ["one.bin", "two.bin"])
        #expect(cache.rows.map(\.holders) == [2, 2])
        registry.logout(a)
        sync()
        #expect(cache.rows.map(\.name) == ["two.bin"])
        #expect(cache.rows.map(\.holders) == [1])
        #expect(cache.rows == registry.list())
    }
}
