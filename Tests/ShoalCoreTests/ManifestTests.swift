import ShoalCore
import ShoalTestSupport
import Testing

@Suite("Manifest")
struct ManifestTests {
    private func build(_ bytes: [UInt8], chunkSize: UInt32? = nil) throws -> Manifest {
        try ManifestBuilder().build(fileSize: UInt64(bytes.count), chunkSize: chunkSize, reader: MemoryChunkReader(bytes))
    }

    /// An empty file has no chunks and the content id the specification defines.
    @Test func emptyFile() throws {
        let manifest = try build([])
        #expect(manifest.chunkCount == 0)
        #expect(manifest.chunkSize == 256 * 1024)
        #expect(manifest == Manifest.empty)
        #expect(manifest.contentID.hex == Fixtures.expected["empty"]!.contentID)
        #expect(manifest.contentID.hex == "ca1a41ce22bf485ff89a884d7dc61258068178f56106fc9298d7da33b2e52897")
    }

    /// One byte makes one chunk of one byte.
    @Test func oneByte() throws {
        let manifest = try build([0x41])
        #expect(manifest.chunkCount == 1)
        #expect(manifest.length(ofChunk: 0) == 1)
        #expect(manifest.digests[0] == ChunkDigest(hashing: [0x41]))
    }

    /// An exact multiple of the chunk size has full chunks only; one byte more adds a one-byte chunk.
    @Test func exactMultipleAndOneMore() throws {
        var generator = SeededGenerator(seed: 7)
        let chunk = 16 * 1024
        let bytes = generator.bytes(4 * chunk + 1)
        let exact = try build(Array(bytes[0..<4 * chunk]), chunkSize: UInt32(chunk))
        #expect(exact.chunkCount == 4)
        #expect((0..<4).allSatisfy { exact.length(ofChunk: $0) == chunk })
        let more = try build(bytes, chunkSize: UInt32(chunk))
        #expect(more.chunkCount == 5)
        #expect(more.length(ofChunk: 4) == 1)
        #expect(Array(more.digests[0..<4]) == exact.digests)
        #expect(more.digests[4] == ChunkDigest(hashing: [bytes.last!]))
        #expect(more.contentID != exact.contentID)
        for i in 0..<5 {
            let start = i * chunk
            let piece = Array(bytes[start..<min(start + chunk, bytes.count)])
            #expect(more.digests[i] == ChunkDigest(hashing: piece))
            #expect(more.offset(ofChunk: i) == UInt64(start))
        }
    }

    /// The content id is SHA-256 of the canonical encoding, which round-trips.
    @Test func canonicalEncodingRoundTrips() throws {
        var generator = SeededGenerator(seed: 9)
        let manifest = try build(generator.bytes(100_000), chunkSize: 16 * 1024)
        let bytes = manifest.canonicalBytes
        #expect(bytes.count == Manifest.headerSize + 7 * 32)
        #expect(Array(bytes[0..<8]) == Array("SHOALMF1".utf8))
        #expect(ChunkDigest(hashing: bytes).hex == manifest.contentID.hex)
        #expect(try Manifest(canonicalBytes: bytes) == manifest)
        #expect(try Manifest(canonicalBytes: bytes, expecting: manifest.contentID) == manifest)
        #expect(try Manifest(fileSize: manifest.fileSize, chunkSize: manifest.chunkSize, concatenatedDigests: manifest.concatenatedDigests) == manifest)
    }

    /// The Python generator's manifest decodes to the same content id it computed.
    @Test func goldenManifestFromFixtures() throws {
        let manifest = try Manifest(canonicalBytes: Fixtures.bytes("manifests/data.bin-16KiB.manifest"))
        let expected = Fixtures.expected["peer_2/data.bin@16KiB"]!
        #expect(manifest.contentID.hex == expected.contentID)
        #expect(manifest.chunkCount == expected.chunks)
        let rebuilt = try build(Fixtures.bytes("peer_2/data.bin"), chunkSize: 16 * 1024)
        #expect(rebuilt == manifest)
    }

    /// Every sample file hashes to the content id the independent Python implementation computed.
    @Test(arguments: Fixtures.peerFiles)
    func sampleFilesMatchPython(file: String) throws {
        let manifest = try build(Fixtures.bytes(file))
        let expected = try #require(Fixtures.expected[file])
        #expect(manifest.contentID.hex == expected.contentID)
        #expect(manifest.chunkSize == expected.chunkSize)
        #expect(manifest.chunkCount == expected.chunks)
    }

    /// Manifests broken on purpose are refused with the error naming their defect.
    @Test func brokenManifestsAreRefused() throws {
        let cases: [(String, (ManifestError) -> Bool)] = [
            ("too-few-digests", { if case .chunkCountMismatch(19, 18) = $0 { true } else { false } }),
            ("count-lies", { if case .chunkCountMismatch(19, 20) = $0 { true } else { false } }),
            ("bad-magic", { $0 == .badMagic }),
            ("truncated", { if case .truncated = $0 { true } else { false } }),
            ("trailing-bytes", { $0 == .trailingBytes(count: 2) }),
            ("absurd-size", { if case .fileTooLarge = $0 { true } else { false } }),
            ("zero-chunk-size", { $0 == .chunkSizeOutOfRange(0) }),
        ]
        for (name, matches) in cases {
            do {
                _ = try Manifest(canonicalBytes: Fixtures.bytes("manifests/\(name).manifest"))
                Issue.record("\(name) was accepted")
            } catch {
                #expect(matches(error), "\(name): got \(error)")
                #expect(!error.description.isEmpty)
            }
        }
    }

    /// Direct construction checks sizes, counts and digest lengths.
    @Test func validationErrors() {
        let digest = ChunkDigest(hashing: [1, 2, 3])
        #expect(throws: ManifestError.chunkCountMismatch(expected: 1, actual: 2)) {
            try Manifest(fileSize: 10, chunkSize: 16384, digests: [digest, digest])
        }
        #expect(throws: ManifestError.chunkSizeOutOfRange(8 * 1024 * 1024)) {
            try Manifest(fileSize: 10, chunkSize: 8 * 1024 * 1024, digests: [digest])
        }
        #expect(throws: ManifestError.fileTooLarge(size: 1 << 41, limit: 1 << 40)) {
            try Manifest(fileSize: 1 << 41, chunkSize: 4 << 20, digests: [])
        }
        #expect(throws: ManifestError.tooManyChunks(count: 1 << 26, limit: 262_144)) {
            try Manifest(fileSize: 1 << 40, chunkSize: 16384, digests: [])
        }
        #expect(throws: ManifestError.digestWrongLength(index: 1, length: 31)) {
            try Manifest(fileSize: 20000, chunkSize: 16384, concatenatedDigests: [UInt8](repeating: 0, count: 63))
        }
        let good = try! Manifest(fileSize: 10, chunkSize: 16384, digests: [digest])
        let other = ContentID(hex: String(repeating: "ab", count: 32))!
        #expect(throws: ManifestError.contentIDMismatch(expected: other, actual: good.contentID)) {
            try Manifest(canonicalBytes: good.canonicalBytes, expecting: other)
        }
    }

    /// Chunk verification checks both length and digest.
    @Test func verifyChunk() throws {
        let bytes: [UInt8] = Array(0..<200).map { UInt8($0) }
        let manifest = try build(bytes)
        bytes.withUnsafeBytes { #expect(manifest.verify(chunk: 0, bytes: $0)) }
        var wrong = bytes
        wrong[5] ^= 1
        wrong.withUnsafeBytes { #expect(!manifest.verify(chunk: 0, bytes: $0)) }
        Array(bytes.dropLast()).withUnsafeBytes { #expect(!manifest.verify(chunk: 0, bytes: $0)) }
    }
}
