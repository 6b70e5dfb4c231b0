import FuzzSupport
import ShoalCore

/// A chunk map in its wire layout (one bit per chunk, most significant bit
/// first), as a downloader reads it from a holder's entry in `fileDetails`.
/// The first input byte sets the chunk count: in most runs one that fits the
/// bytes (their bits, less 0–7 padding bits); with its top bit set, any count
/// from the next two bytes, so length mismatches are tried too. A map that
/// decodes must encode to the same bytes and agree with itself on every query.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChunkMap(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    let chunks: Int
    if selector & 0x80 != 0 {
        chunks = Int(input.integer(bytes: 2))
    } else {
        chunks = max(input.rest.count * 8 - Int(selector & 7), 0)
    }
    let bytes = input.rest
    guard let map = ChunkMap(count: chunks, bytes: bytes) else {
        require(bytes.count != (chunks + 7) / 8 || hasPaddingBits(bytes, count: chunks), "a well-formed map of \(chunks) chunks is refused")
        return 0
    }

    require(map.count == chunks, "a map of \(chunks) chunks has count \(map.count)")
    require(map.bytes.elementsEqual(bytes), "a map of \(chunks) chunks does not encode to its bytes")
    let indices = map.indices
    require(indices.count == map.heldCount, "\(indices.count) indices, held count \(map.heldCount)")
    require(indices == indices.sorted() && Set(indices).count == indices.count, "indices out of order or repeated")
    var walked: [Int] = []
    map.forEachIndex { walked.append($0) }
    require(walked == indices, "forEachIndex and indices disagree")
    for index in indices { require(map.contains(index), "index \(index) listed but not contained") }
    require(!map.contains(-1) && !map.contains(chunks), "a map contains an index out of range")
    require(map.firstIndex(from: 0) == indices.first, "firstIndex(from: 0) is not the first index")
    require(map.isComplete == (map.heldCount == chunks), "isComplete disagrees with the counts")
    for byteIndex in 0..<bytes.count {
        require(map.byte(at: byteIndex) == bytes[byteIndex], "byte \(byteIndex) reads back differently")
    }

    // Changes to the complement: everything held is lost, everything else gained.
    let complement = ChunkMap(count: chunks, indices: (0..<chunks).filter { !map.contains($0) })
    let changes = map.changes(to: complement)
    require(changes.lost == indices && changes.gained.count == chunks - indices.count, "changes to the complement are wrong")
    var rebuilt = ChunkMap(count: chunks)
    for index in indices { rebuilt.insert(index) }
    require(rebuilt == map, "a map rebuilt from its indices differs")
    return 0
}

/// Whether the last byte sets bits past `count` (which the wire forbids).
private func hasPaddingBits(_ bytes: UnsafeRawBufferPointer, count: Int) -> Bool {
    guard count % 8 != 0, let last = bytes.last else { return false }
    return last & (0xFF >> (count % 8)) != 0
}
