import Foundation
import ShoalCore
import ShoalPeer
import ShoalTestSupport
import Testing

/// The resume map of a partial download on disk.
@Suite("Partial download", .timeLimit(.minutes(1)))
struct PartialDownloadTests {
    /// Written chunks count at once in memory; their bits reach the `.have`
    /// file when the map is recorded (or the download is closed), and a
    /// reopened download holds exactly the chunks recorded.
    @Test func chunkBitsReachTheFileWhenTheMapIsRecorded() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let chunkSize = Int(ChunkSizing.minimum)
        let bytes = (0..<(chunkSize * 20)).map { UInt8(truncatingIfNeeded: $0 * 7 + $0 / 251) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir.file("source")))
        let manifest = try ManifestBuilder().build(path: dir.file("source"), chunkSize: UInt32(chunkSize))
        try FileManager.default.createDirectory(atPath: dir.file("folder"), withIntermediateDirectories: true)
        let folder = try SharedFolder(path: dir.file("folder"))
        let havePath = folder.partialDirectory + "/" + manifest.contentID.hex + ".have"
        func written(_ partial: PartialDownload, _ chunks: [Int]) throws {
            for index in chunks {
                let start = index * chunkSize
                try bytes[start..<(start + chunkSize)].withUnsafeBytes { try partial.write(chunk: index, bytes: $0) }
            }
        }
        func recorded() throws -> Int {
            try Data(contentsOf: URL(fileURLWithPath: havePath)).reduce(0) { $0 + $1.nonzeroBitCount }
        }

        var partial: PartialDownload? = try PartialDownload(folder: folder, manifest: manifest, name: "f")
        try written(partial!, [0, 3, 9, 17])
        #expect(partial!.have.indices == [0, 3, 9, 17])
        #expect(try recorded() == 0, "recorded before recordMap")
        try partial!.recordMap()
        #expect(try recorded() == 4)
        try written(partial!, [18, 19])
        try partial!.recordMap()
        #expect(try recorded() == 6)
        // Closing records what is left.
        try written(partial!, [1])
        partial = nil
        #expect(try recorded() == 7)

        let reopened = try PartialDownload(folder: folder, manifest: manifest, name: "f")
        #expect(reopened.have.indices == [0, 1, 3, 9, 17, 18, 19])
    }

    /// Chunks larger than one `pwrite` (they go in pieces of 256 KiB) land
    /// whole at their offsets, whatever order they come in, and the finished
    /// file is the source byte for byte.
    @Test func chunksLargerThanOneWriteArriveWhole() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let chunkSize = 1024 * 1024 + 4096
        let bytes = (0..<(chunkSize * 3 + 777)).map { UInt8(truncatingIfNeeded: $0 * 13 + $0 / 4093) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir.file("source")))
        let manifest = try ManifestBuilder().build(path: dir.file("source"), chunkSize: UInt32(chunkSize))
        #expect(manifest.chunkCount == 4)
        try FileManager.default.createDirectory(atPath: dir.file("folder"), withIntermediateDirectories: true)
        let folder = try SharedFolder(path: dir.file("folder"))
        let partial = try PartialDownload(folder: folder, manifest: manifest, name: "big")
        for index in [2, 0, 3, 1] {
            let start = index * chunkSize
            try bytes[start..<min(bytes.count, start + chunkSize)].withUnsafeBytes { try partial.write(chunk: index, bytes: $0) }
        }
        #expect(partial.have.heldCount == 4)
        _ = try partial.finish(as: dir.file("folder") + "/big", flush: false)
        let arrived = try Data(contentsOf: URL(fileURLWithPath: dir.file("folder") + "/big"))
        #expect(arrived == Data(bytes))
    }
}
