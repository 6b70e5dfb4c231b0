import ShoalCore
import Testing

@Suite("Digests and content ids")
struct DigestTests {
    /// SHA-256 of "abc" is the standard test vector; hex round-trips.
    @Test func knownVector() throws {
        let digest = ChunkDigest(hashing: Array("abc".utf8))
        #expect(digest.hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(ChunkDigest(hex: digest.hex) == digest)
        #expect(ChunkDigest(hex: digest.hex.uppercased()) == digest)
        #expect(ChunkDigest(bytes: digest.bytes) == digest)
    }

    @Test func badHexIsRefused() {
        #expect(ChunkDigest(hex: "abc") == nil)
        #expect(ContentID(hex: String(repeating: "g", count: 64)) == nil)
        #expect(ContentID(bytes: [UInt8](repeating: 0, count: 31)) == nil)
    }
}
