import FuzzSupport
import ShoalWire

/// The bounded inflater on an arbitrary zlib stream. The first three input
/// bytes give the declared size (0 to 1 MiB), the rest is the stream. It must
/// either fill exactly the declared size or throw a WireError, never write
/// past it; and the inflater a connection reuses from chunk to chunk must
/// answer exactly as a fresh one does, whatever the stream before left in it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInflater(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let declared = Int(input.integer(bytes: 3) % (1 << 20 + 1))
    let stream = input.rest

    let reused = inflate(stream, declared: declared, with: reusedInflater)
    let fresh = inflate(stream, declared: declared, with: Inflater())
    switch (reused, fresh) {
    case let (.success(a), .success(b)):
        require(a == b, "a reused inflater and a fresh one inflate \(stream.count) bytes differently")
    case let (.failure(a), .failure(b)):
        require(a == b, "a reused inflater says \(a), a fresh one \(b)")
    default:
        fatalError("a reused inflater and a fresh one disagree: \(reused) vs \(fresh)")
    }
    return 0
}

/// Kept from run to run, as a downloader keeps one per connection.
nonisolated(unsafe) private let reusedInflater = Inflater()

/// Inflates into a buffer with a guard zone after the declared size: a byte
/// written there is a write past the bound.
private func inflate(_ stream: UnsafeRawBufferPointer, declared: Int, with inflater: Inflater) -> Result<[UInt8], WireError> {
    let guardZone = 64
    var output = [UInt8](repeating: 0xA5, count: declared + guardZone)
    let result = output.withUnsafeMutableBytes { buffer in
        Result { () throws(WireError) in
            try inflater.inflate(stream, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<declared]))
        }
    }
    require(output[declared...].allSatisfy { $0 == 0xA5 }, "the inflater wrote past the declared \(declared) bytes")
    return result.map { Array(output[..<declared]) }
}
