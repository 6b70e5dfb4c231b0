import Foundation
import ShoalCore
import ShoalTestSupport
import ShoalWire
import Testing

/// A tracker writes `fileDetails` entries by hand, with a gap for the
/// download id. Whatever the entry holds (odd names, quotes, control
/// characters, non-ASCII, every optional present or absent), the bytes
/// with an id put in the gap must read back, through Foundation's decoder
/// as a peer reads them, as that entry with that id.
@Suite("Replies written by hand")
struct FileDetailJSONTests {
    static let awkward = ["plain.bin", "a \"quoted\" name", "back\\slash", "tab\tand\nnewline", "bell\u{07}\u{1F}", "ελληνικά.txt",
                          "emoji 🐟.log", "slash/and/more", "", "\u{7F}del", "\u{08}back\u{0C}feed\r"]

    /// A `fileList` row is byte for byte what Foundation's encoder writes,
    /// so list pages read the same whoever wrote them.
    @Test func listRowsAreFoundationsBytes() throws {
        var generator = SeededGenerator(seed: 22)
        for name in Self.awkward {
            let row = ListedFile(name: name, contentID: ContentID(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })!,
                                 size: UInt64.random(in: 0...UInt64(1) << 40, using: &generator), holders: Int.random(in: 0...500, using: &generator),
                                 partialHolders: Int.random(in: 0...500, using: &generator))
            #expect(row.encodedJSON() == Array(WireJSON.encode(row)), "\(name)")
        }
    }

    /// The tracker writes `announced` by hand too: Foundation's bytes, and they read back.
    @Test func announcedIsFoundationsBytes() throws {
        for files in [0, 1, 9, 10, 12_345, Int.max] {
            let frame = try Announced(files: files).frame(requestID: 7)
            #expect(Array(frame.payload.readableBytesView) == Array(WireJSON.encode(Announced(files: files))))
            #expect(try Announced(frame: frame) == Announced(files: files))
        }
    }

    /// Base64 (digests, chunk maps) goes out unescaped, `/` included, and reads back the same.
    @Test func base64IsWrittenAsItIs() throws {
        let digests = Data((0..<64 * 32).map { UInt8(truncatingIfNeeded: $0 &* 131) }).base64EncodedString()
        #expect(digests.contains("/"))
        let detail = FileDetail(name: "a.bin", contentID: ContentID(bytes: Array(repeating: 7, count: 32))!,
                                manifest: ManifestPayload(fileSize: 64 * 262_144, chunkSize: 262_144, digests: digests), holders: [],
                                moreHolders: nil, size: 64 * 262_144, chunkCount: 64, completeHolders: 0, partialHolders: 0,
                                firstSharedBy: nil, since: nil, downloadID: "")
        let (head, tail) = detail.encodedAroundDownloadID()
        #expect(String(decoding: head + tail, as: UTF8.self).contains(digests))
        #expect(try JSONDecoder().decode(FileDetail.self, from: Data(head + tail)) == detail)
    }

    @Test func readsBackAsTheSameEntry() throws {
        var generator = SeededGenerator(seed: 21)
        func maybe<T>(_ value: @autoclosure () -> T) -> T? { Bool.random(using: &generator) ? value() : nil }
        for _ in 0..<500 {
            let holders = (0..<Int.random(in: 0...4, using: &generator)).map { _ in
                var holder = Holder(user: Self.awkward.randomElement(using: &generator)!, host: ["127.0.0.1", "::1", "198.18.0.7"].randomElement(using: &generator)!,
                                    port: Int.random(in: 1...65_535, using: &generator), countDownloads: Int.random(in: 0...1_000_000, using: &generator),
                                    countFailures: Int.random(in: 0...50, using: &generator), bytesServed: UInt64.random(in: 0...UInt64(1) << 50, using: &generator),
                                    chunks: Bool.random(using: &generator) ? "AAEC/+8=" : nil,
                                    keyFingerprint: Bool.random(using: &generator) ? String(repeating: "ab", count: 32) : nil)
                holder.mapVersion = Bool.random(using: &generator) ? UInt64.random(in: 0...1_000, using: &generator) : nil
                holder.gained = Bool.random(using: &generator) ? (0..<Int.random(in: 0...5, using: &generator)).map { _ in Int.random(in: 0...70_000, using: &generator) } : nil
                return holder
            }
            let digests = Data((0..<Int.random(in: 1...64, using: &generator) * 32).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
            let contentID = ContentID(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })!
            let manifest = Bool.random(using: &generator) ? ManifestPayload(fileSize: 5_000_000, chunkSize: 262_144, digests: digests) : nil
            let since: Double? = Bool.random(using: &generator)
                ? [1_733_130_000.123456, 0, 1e-7, 1.5e300, Double.random(in: 0...2e9, using: &generator)].randomElement(using: &generator)! : nil
            let detail = FileDetail(name: Self.awkward.randomElement(using: &generator)!, contentID: contentID, manifest: manifest, holders: holders,
                                    moreHolders: Bool.random(using: &generator) ? Int.random(in: 1...500, using: &generator) : nil,
                                    size: Bool.random(using: &generator) ? UInt64.random(in: 0...UInt64(1) << 40, using: &generator) : nil,
                                    chunkCount: Bool.random(using: &generator) ? Int.random(in: 0...262_144, using: &generator) : nil,
                                    completeHolders: Bool.random(using: &generator) ? Int.random(in: 0...9, using: &generator) : nil,
                                    partialHolders: Bool.random(using: &generator) ? Int.random(in: 0...9, using: &generator) : nil,
                                    firstSharedBy: Bool.random(using: &generator) ? Self.awkward.randomElement(using: &generator)! : nil,
                                    since: since, downloadID: "ignored")
            let id = "d-\(Int.random(in: 0...Int.max, using: &generator))"
            let (head, tail) = detail.encodedAroundDownloadID()
            let decoded = try JSONDecoder().decode(FileDetail.self, from: Data(head + Array(id.utf8) + tail))
            var expected = detail
            expected.downloadID = id
            #expect(decoded == expected)
        }
    }
}
