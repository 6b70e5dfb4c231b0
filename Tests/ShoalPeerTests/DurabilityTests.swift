import Foundation
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalTestSupport
import ShoalWire
import Testing

/// What a finished download leaves behind, and what happens to it after the
/// machine restarts; the prepared-chunk cache after a crash.
@Suite("Durability of downloads and caches", .timeLimit(.minutes(2)))
struct DurabilityTests {
    /// The folder's manifest cache as JSON.
    private func cacheItems(_ folder: String) throws -> [String: [String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/.shoal/manifests.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(json["files"] as? [String: [String: Any]])
    }

    /// `shoal get` (a peer that exits afterwards) leaves its download marked
    /// as not yet flushed; a peer that goes on serving flushes it in the
    /// background and clears the mark.
    @Test func downloadsAreMarkedUntilFlushed() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(3 << 20, seed: 7)
        _ = try await swarm.peer("s", folder: try swarm.folder("s", files: ["a.bin": bytes, "b.bin": Array(bytes.reversed())]))
        let exiting = try await swarm.peer("exits", folder: try swarm.folder("exits")) { $0.servesAfterwards = false }
        let staying = try await swarm.peer("stays", folder: try swarm.folder("stays"))

        _ = try await exiting.download(name: "a.bin")
        let marked = try cacheItems(try swarm.folder("exits"))["a.bin"]
        #expect(marked?["unflushedIn"] as? String == BootID.current)

        _ = try await staying.download(name: "b.bin")
        var cleared = false
        for _ in 0..<100 where !cleared {
            let item = try cacheItems(try swarm.folder("stays"))["b.bin"]
            cleared = item != nil && item?["unflushedIn"] == nil
            if !cleared { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(cleared, "the background flush cleared the mark")
        await swarm.stop()
    }

    /// After a restart, a download whose bytes were damaged before they
    /// reached the disk is not shared: it goes back to a partial download
    /// with the chunks that still verify, and fetching it again fetches only
    /// the lost ones.
    @Test func aDownloadDamagedByACrashGoesBackToPartial() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(4 << 20, seed: 8)   // 16 chunks of 256 KiB
        _ = try await swarm.peer("s", folder: try swarm.folder("s", files: ["f.bin": bytes]))
        let folder = try swarm.folder("d")
        let downloader = try await swarm.peer("d", folder: folder) { $0.servesAfterwards = false }
        _ = try await downloader.download(name: "f.bin")
        let manifest = try ManifestBuilder().build(path: folder + "/f.bin")
        #expect(manifest.chunkCount == 16)

        // What a power cut could leave: chunk 3 zeroed, the size unchanged,
        // the record matching the file as it is, made in a boot that is no
        // longer the machine's.
        let shared = try SharedFolder(path: folder)
        let entry = try #require(try shared.scan().first { $0.name.value == "f.bin" })
        #expect(entry.manifest == manifest)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: folder + "/f.bin"))
        try handle.seek(toOffset: manifest.offset(ofChunk: 3))
        try handle.write(contentsOf: Data(count: manifest.length(ofChunk: 3)))
        try handle.close()
        shared.remember(entry, unflushedIn: "a boot before the crash")

        let notices = NoticeLog()
        let entries = try shared.scan(notice: { notices.add($0) })
        #expect(entries.isEmpty, "the damaged file is not shared")
        #expect(!FileManager.default.fileExists(atPath: folder + "/f.bin"))
        #expect(notices.all.first?.contains("lost 1 of its 16 chunks") == true, "\(notices.all)")

        let again = try await downloader.download(name: "f.bin")
        #expect(again.resumedChunks == 15)
        #expect(again.fetchedChunks == 1)
        #expect(sha256(ofFile: folder + "/f.bin") == ChunkDigest(hashing: bytes).hex)
        await swarm.stop()
    }

    /// One connection asking for chunks of more files than it may hold
    /// descriptors for still gets every chunk (from memory past the limit).
    @Test func descriptorsPerConnectionAreBounded() async throws {
        let swarm = try await TestSwarm()
        var files: [String: [UInt8]] = [:]
        for i in 0..<16 { files["f\(i).bin"] = randomBytes(100_000, seed: UInt64(100 + i)) }
        let folder = try swarm.folder("s", files: files)
        let peer = try await swarm.peer("s", folder: folder)
        let client = try await FramedConnection.connect(host: "127.0.0.1", port: peer.server.port, role: "peer")
        // Descriptors open on this test's files (the tests around open others).
        func openOnFolder() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").filter { fd in
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd))?.hasPrefix(folder + "/f") == true
            }.count
        }
        let before = try openOnFolder()
        for (name, bytes) in files.sorted(by: { $0.key < $1.key }) {
            let manifest = try ManifestBuilder().build(path: folder + "/" + name)
            guard case let .chunkData(data) = try await client.request(.chunkRequest(ChunkRequest(contentID: manifest.contentID, index: 0))) else {
                Issue.record("no chunk of \(name)")
                continue
            }
            #expect(try data.verifiedBytes(against: manifest, inflater: Inflater()) == bytes, "\(name)")
        }
        // Eight descriptors for this connection at most.
        let during = try openOnFolder()
        #expect(during - before <= 8, "\(during - before) more descriptors open on the shared files")
        #expect(during - before > 0, "no chunk went out with sendfile")
        client.close()
        await swarm.stop()
    }

    /// A prepared-chunk cache that does not match its data file (a crash
    /// while it was written, a damaged disk) is built again, not served.
    @Test func aDamagedChunkCacheIsRebuilt() async throws {
        let swarm = try await TestSwarm()
        let text = Array(String(repeating: "2026-11-27 12:00:00 INFO shoal: a line of log that compresses well\n", count: 20_000).utf8)
        let folder = try swarm.folder("s", files: ["log.txt": text])
        let first = try await swarm.peer("s", folder: folder)
        await first.stop()
        let cache = folder + "/.shoal/cache"
        let data = try #require(try FileManager.default.contentsOfDirectory(atPath: cache).first { $0.hasSuffix(".dat") })
        #expect(truncate(cache + "/" + data, 10) == 0)

        let again = try await swarm.start("s", folder: folder)
        let manifest = try ManifestBuilder().build(path: folder + "/log.txt")
        let client = try await FramedConnection.connect(host: "127.0.0.1", port: again.server.port, role: "peer")
        var whole: [UInt8] = []
        for index in 0..<manifest.chunkCount {
            guard case let .chunkData(chunk) = try await client.request(.chunkRequest(ChunkRequest(contentID: manifest.contentID, index: UInt32(index)))) else {
                Issue.record("no chunk \(index)")
                break
            }
            #expect(chunk.isCompressed)
            whole += try chunk.verifiedBytes(against: manifest, inflater: Inflater())
        }
        #expect(whole == text)
        client.close()
        await swarm.stop()
    }
}

/// Notices collected from another thread.
final class NoticeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var notices: [String] = []
    func add(_ notice: String) { lock.withLock { notices.append(notice) } }
    var all: [String] { lock.withLock { notices } }
}

/// Reports to a tracker that has not listed the holder to this session yet
/// (it restarted since the download began, say).
@Suite("Reports", .timeLimit(.minutes(2)))
struct ReportTests {
    /// A report about a real holder the tracker has not listed to this
    /// session is retried once after asking for the file's holders, and
    /// counts; a report about someone who holds nothing is still refused.
    @Test func aReportAfterTheTrackerForgotIsRetried() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(300_000, seed: 9)
        let seeder = try await swarm.peer("s", folder: try swarm.folder("s", files: ["r.bin": bytes]))
        let reporter = try await swarm.peer("r", folder: try swarm.folder("r"))
        let manifest = try ManifestBuilder().build(path: try swarm.folder("s") + "/r.bin")

        // No details asked: the tracker has listed nobody to this session.
        let reply = await reporter.session.report(contentID: manifest.contentID, holder: "s", succeeded: true, bytes: 300_000, downloadID: nil)
        #expect(reply?.countDownloads == 1)
        let refused = await reporter.session.report(contentID: manifest.contentID, holder: "nobody", succeeded: true, bytes: 1, downloadID: nil)
        #expect(refused == nil)
        _ = seeder
        await swarm.stop()
    }
}
