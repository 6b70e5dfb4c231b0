import Foundation
import ShoalCore
import ShoalPeer
import ShoalTestSupport
import Synchronization
import Testing

@Suite("The shared folder's manifest cache")
struct SharedFolderTests {
    /// Scans `folder` and returns its entries with the names it hashed.
    private func scan(_ folder: SharedFolder) throws -> (entries: [SharedFolder.Entry], hashed: [String]) {
        let hashed = Mutex<[String]>([])
        let entries = try folder.scan { name in hashed.withLock { $0.append(name) } }
        return (entries, hashed.withLock { $0 })
    }

    private func makeFolder() throws -> (TemporaryDirectory, SharedFolder, SharedFolder.Entry) {
        let dir = try TemporaryDirectory()
        try Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: dir.file("data.bin")))
        let folder = try SharedFolder(path: dir.path)
        let entries = try folder.scan()
        return (dir, folder, try #require(entries.first))
    }

    /// A folder opened with a chunk size shares its files in chunks of that
    /// size, hashing again a file the cache knows at another size.
    @Test func chosenChunkSize() throws {
        let (dir, _, entry) = try makeFolder()
        defer { dir.remove() }
        #expect(entry.manifest.chunkSize == ChunkSizing.minimumDefault)
        let small = try SharedFolder(path: dir.path, chunkSize: 16_384)
        let rescanned = try scan(small)
        #expect(rescanned.hashed == ["data.bin"])
        #expect(rescanned.entries.first?.manifest.chunkSize == 16_384)
        #expect(rescanned.entries.first?.manifest.chunkCount == 19)
        #expect(try scan(small).hashed.isEmpty, "cached at the new size")
    }

    /// A file is hashed once; later scans take its manifest from the cache.
    @Test func scansHashOnlyNewFiles() throws {
        let (dir, folder, entry) = try makeFolder()
        defer { dir.remove() }
        let again = try scan(folder)
        #expect(again.hashed.isEmpty)
        #expect(again.entries == [entry])
    }

    /// A download remembered as not yet on disk is trusted while the machine
    /// runs the same boot, and hashed again after a restart (another boot
    /// id), since a crash may have lost its bytes.
    @Test func unflushedDownloadsAreHashedAgainAfterARestart() throws {
        let (dir, folder, entry) = try makeFolder()
        defer { dir.remove() }
        let boot = try #require(BootID.current, "Linux gives every boot an id")

        folder.remember(entry, unflushedIn: boot)
        #expect(try scan(folder).hashed.isEmpty)

        folder.remember(entry, unflushedIn: "an earlier boot")
        let afterRestart = try scan(folder)
        #expect(afterRestart.hashed == ["data.bin"])
        #expect(afterRestart.entries == [entry])
        // Hashed again, it is trusted from then on.
        #expect(try scan(folder).hashed.isEmpty)
    }

    /// Flushing a download to disk makes its manifest hold across restarts.
    @Test func flushingMakesTheRecordDurable() throws {
        let (dir, folder, entry) = try makeFolder()
        defer { dir.remove() }
        folder.remember(entry, unflushedIn: "an earlier boot")
        try folder.flush(entry)
        #expect(try scan(folder).hashed.isEmpty)
    }

    /// Flushing a file that is gone is a clear storage error.
    @Test func flushingAMissingFileFails() throws {
        let (dir, folder, entry) = try makeFolder()
        defer { dir.remove() }
        try FileManager.default.removeItem(atPath: entry.path)
        #expect(throws: StorageError.self) { try folder.flush(entry) }
    }
}
