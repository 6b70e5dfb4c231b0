import NIOCore
import ShoalCore
import ShoalTestSupport
import ShoalWire
import Testing

/// A seeded randomized round: thousands of valid frames mutated at random
/// (bit flips, truncation, random tails, forged lengths, types and flags) go
/// through the whole receive path. Every outcome must be a decoded message or
/// a typed ``WireError``: never a crash, a hang or an unbounded allocation.
@Suite("Mutated frames")
struct MutatedFrameTests {
    static let seed: UInt64 = 0x5EED_1006
    static let rounds = 5000

    @Test func thousandsOfMutatedFrames() throws {
        let manifest = try Manifest(canonicalBytes: Fixtures.bytes("frames/notes.txt.manifest"))
        var originals: [[UInt8]] = [
            "hello", "helloAck", "error", "checkActive", "chunkRequest", "chunkData-stored", "chunkData-compressed",
        ].map { Fixtures.bytes("frames/\($0).frame") }
        originals += try ControlMessageTests.samples.map { Array(buffer: try $0.frame(requestID: 1).encoded()) }

        var generator = SeededGenerator(seed: Self.seed)
        var outcomes = (decoded: 0, refused: 0)
        let inflater = Inflater()
        for round in 0..<Self.rounds {
            var bytes = originals.randomElement(using: &generator)!
            mutate(&bytes, using: &generator)
            // Deliver in random pieces, as TCP might.
            var decoder = FrameDecoder(maximumPayloadLength: 1 << 20)
            var buffer = ByteBuffer()
            var rest = bytes[...]
            do {
                while !rest.isEmpty {
                    let n = Int.random(in: 1...rest.count, using: &generator)
                    buffer.writeBytes(rest.prefix(n))
                    rest = rest.dropFirst(n)
                    while let frame = try decoder.decodeFrame(&buffer) { try consume(frame, manifest, inflater) }
                }
                while let frame = try decoder.decodeLast(buffer: &buffer, seenEOF: true) { try consume(frame, manifest, inflater) }
                outcomes.decoded += 1
            } catch let error as WireError {
                #expect(!error.description.isEmpty)
                outcomes.refused += 1
            } catch {
                Issue.record("round \(round) (seed \(Self.seed)): untyped error \(error)")
            }
        }
        // Both paths must have been exercised for the round to mean anything.
        #expect(outcomes.decoded > Self.rounds / 20)
        #expect(outcomes.refused > Self.rounds / 4)
    }

    private func consume(_ frame: Frame, _ manifest: Manifest, _ inflater: Inflater) throws(WireError) {
        let message = try Message(frame: frame)
        if case let .chunkData(data) = message {
            _ = try data.verifiedBytes(against: manifest, inflater: inflater)
        }
        if case let .announce(announce) = message {
            for file in announce.files { _ = try? file.manifest?.manifest() }
        }
    }

    private func mutate(_ bytes: inout [UInt8], using generator: inout SeededGenerator) {
        switch Int.random(in: 0..<8, using: &generator) {
        case 0: // flip a few bits anywhere
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let i = Int.random(in: 0..<bytes.count, using: &generator)
                bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
            }
        case 1: // truncate
            bytes.removeLast(Int.random(in: 1...bytes.count, using: &generator))
        case 2: // random tail (maybe a second, garbage frame)
            bytes += generator.bytes(Int.random(in: 1...64, using: &generator))
        case 3: // forge the length field
            let length = UInt32.random(in: 0...UInt32.max, using: &generator) >> UInt32.random(in: 0...31, using: &generator)
            withUnsafeBytes(of: length.bigEndian) { for i in 0..<4 { bytes[4 + i] = $0[i] } }
        case 4: // forge the type or the flags
            bytes[Int.random(in: 1...2, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
        case 5: // corrupt the payload only
            if bytes.count > 12 {
                for _ in 0..<Int.random(in: 1...16, using: &generator) {
                    bytes[Int.random(in: 12..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
        case 6: // two frames back to back, the second mutated
            var second = bytes
            second[Int.random(in: 0..<second.count, using: &generator)] ^= 0xFF
            bytes += second
        default: // leave intact: the valid path must keep working
            break
        }
    }
}
