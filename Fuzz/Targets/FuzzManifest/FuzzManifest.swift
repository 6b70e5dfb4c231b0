import FuzzSupport
import ShoalCore

/// A manifest in its canonical encoding, as a peer reads it from a tracker
/// reply or from disk: decode and validate. A manifest that decodes must
/// encode to the very same bytes, and its chunks must tile the file exactly.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard let manifest = try? Manifest(canonicalBytes: bytes) else { return 0 }

    require(manifest.canonicalBytes.elementsEqual(bytes), "a manifest does not encode to the bytes it came from")
    require(manifest.digests.count == manifest.chunkCount, "\(manifest.digests.count) digests for \(manifest.chunkCount) chunks")
    var covered: UInt64 = 0
    for index in 0..<manifest.chunkCount {
        require(manifest.offset(ofChunk: index) == covered, "chunk \(index) starts at \(manifest.offset(ofChunk: index)), not \(covered)")
        let length = manifest.length(ofChunk: index)
        require(length > 0 && length <= Int(manifest.chunkSize), "chunk \(index) is \(length) bytes, chunk size \(manifest.chunkSize)")
        covered += UInt64(length)
    }
    require(covered == manifest.fileSize, "the chunks cover \(covered) bytes of a \(manifest.fileSize)-byte file")
    // The same content decoded with its own id is accepted; any other id is not.
    require((try? Manifest(canonicalBytes: bytes, expecting: manifest.contentID)) == manifest, "a manifest is refused with its own content id")
    return 0
}
