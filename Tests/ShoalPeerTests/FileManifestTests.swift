#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShoalCore
import ShoalPeer
import ShoalTestSupport
import Testing

@Suite("Manifests of files on disk")
struct FileManifestTests {
    /// A file over 4 GiB (sparse, so it costs no disk) hashes with 64-bit offsets:
    /// bytes written past 4 GiB land in the right chunk.
    @Test func overFourGiBSparseFile() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("big.sparse")
        let size: UInt64 = (4 << 30) + (5 << 20) + 3 // 4 GiB + 5 MiB + 3 bytes
        let marker = Array("beyond four gibibytes".utf8)
        let markerOffset: UInt64 = (4 << 30) + (1 << 20) + 17
        let fd = open(path, O_CREAT | O_RDWR, 0o644)
        #expect(fd >= 0)
        #expect(ftruncate(fd, off_t(size)) == 0)
        #expect(marker.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(markerOffset)) } == marker.count)
        close(fd)

        let manifest = try await onThread { try ManifestBuilder().build(path: path) }
        #expect(manifest.fileSize == size)
        #expect(manifest.chunkSize == 4 << 20)
        #expect(manifest.chunkCount == 1026)
        let zeros = ChunkDigest(hashing: [UInt8](repeating: 0, count: 4 << 20))
        #expect(manifest.digests[0] == zeros)
        #expect(manifest.digests[1023] == zeros)
        var chunk1024 = [UInt8](repeating: 0, count: 4 << 20)
        chunk1024.replaceSubrange(((1 << 20) + 17)..<((1 << 20) + 17 + marker.count), with: marker)
        #expect(manifest.digests[1024] == ChunkDigest(hashing: chunk1024))
        #expect(manifest.length(ofChunk: 1025) == (1 << 20) + 3)
        #expect(manifest.offset(ofChunk: 1025) == (4 << 30) + (4 << 20))
        #expect(manifest.digests[1025] == ChunkDigest(hashing: [UInt8](repeating: 0, count: (1 << 20) + 3)))
    }

    /// The sample peer folders hash to the ids the Python generator computed.
    @Test(arguments: Fixtures.peerFiles)
    func fixtureFiles(file: String) throws {
        let manifest = try ManifestBuilder().build(path: Fixtures.path(file))
        #expect(manifest.contentID.hex == Fixtures.expected[file]?.contentID)
    }

    /// Missing files and folders give a clear storage error.
    @Test func unreadableSources() throws {
        #expect(throws: StorageError.self) { try ManifestBuilder().build(path: "/nonexistent/shoal/file") }
        do {
            _ = try ManifestBuilder().build(path: Fixtures.path("peer_1"))
            Issue.record("a folder was hashed")
        } catch let error as StorageError {
            #expect(error.description.contains("not a regular file"))
        }
    }
}
