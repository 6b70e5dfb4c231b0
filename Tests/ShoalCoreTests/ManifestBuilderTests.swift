import ShoalCore
import ShoalTestSupport
import Synchronization
import Testing

@Suite("Manifest builder")
struct ManifestBuilderTests {
    /// Parallel hashing gives exactly what one worker gives, whatever the worker count.
    @Test(arguments: [1, 2, 3, 8])
    func parallelMatchesSerial(workers: Int) throws {
        var generator = SeededGenerator(seed: UInt64(workers))
        let bytes = generator.bytes(16 * 1024 * 13 + 777)
        let reader = MemoryChunkReader(bytes)
        let serial = try ManifestBuilder(parallelism: 1).build(fileSize: UInt64(bytes.count), chunkSize: 16 * 1024, reader: reader)
        let parallel = try ManifestBuilder(parallelism: workers).build(fileSize: UInt64(bytes.count), chunkSize: 16 * 1024, reader: reader)
        #expect(parallel == serial)
        #expect(parallel.chunkCount == 14)
    }

    /// Progress reaches the file size.
    @Test func progressReachesTotal() throws {
        let bytes = [UInt8](repeating: 3, count: 100_000)
        let seen = Mutex<UInt64>(0)
        _ = try ManifestBuilder(parallelism: 2).build(fileSize: 100_000, chunkSize: 16 * 1024, reader: MemoryChunkReader(bytes)) { done in
            seen.withLock { $0 = max($0, done) }
        }
        #expect(seen.withLock { $0 } == 100_000)
    }

    /// A source shorter than the size it was given is an error, not a short manifest.
    @Test func shortSourceIsAnError() {
        let reader = MemoryChunkReader([UInt8](repeating: 1, count: 1000))
        #expect(throws: ManifestError.sourceShorterThanDeclared(chunk: 0, expected: 2000, actual: 1000)) {
            try ManifestBuilder(parallelism: 1).build(fileSize: 2000, reader: reader)
        }
    }

    /// A reader's error surfaces from the builder.
    @Test func readerErrorsSurface() {
        struct Failing: ChunkReader {
            struct Boom: Error {}
            func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int { throw Boom() }
        }
        #expect(throws: Failing.Boom.self) {
            try ManifestBuilder().build(fileSize: 1 << 20, reader: Failing())
        }
    }

    /// Absurd sizes are refused before any reading.
    @Test func absurdSizeRefused() {
        #expect(throws: ManifestError.self) {
            try ManifestBuilder().build(fileSize: 1 << 50, reader: MemoryChunkReader([]))
        }
    }
}
