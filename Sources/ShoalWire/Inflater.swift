import CZlib

/// A reusable zlib (RFC 1950) decompressor that never writes past a bound.
///
/// The caller gives the exact size the data must inflate to (a chunk's
/// declared length, itself checked against the manifest). Inflating stops at
/// that many bytes: a stream that would produce more is refused as soon as it
/// tries, so a small frame cannot blow up into a large allocation.
public final class Inflater {
    private var stream = z_stream()

    public init() {
        let status = shoal_inflate_init(&stream)
        precondition(status == Z_OK, "inflateInit2 failed (\(status)): out of memory")
    }

    deinit { inflateEnd(&stream) }

    /// Inflates the complete zlib stream `input` into `output`, which must be
    /// exactly the declared size. Throws if the stream is corrupt, ends early,
    /// or has more to give once `output` is full.
    public func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(WireError) {
        inflateReset(&stream)
        defer {
            stream.next_in = nil
            stream.next_out = nil
        }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        var produced = 0
        var status = Z_BUF_ERROR
        if output.count > 0 {
            stream.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(output.count)
            status = CZlib.inflate(&stream, Z_FINISH)
            produced = output.count - Int(stream.avail_out)
        }
        if status == Z_BUF_ERROR && produced == output.count {
            // Output is full: the stream must end here without giving one more byte.
            var probe: UInt8 = 0
            status = withUnsafeMutablePointer(to: &probe) { pointer in
                stream.next_out = pointer
                stream.avail_out = 1
                return CZlib.inflate(&stream, Z_FINISH)
            }
            if stream.avail_out == 0 { throw .inflatedPastDeclaredSize(declared: output.count) }
        }
        switch status {
        case Z_STREAM_END:
            guard produced == output.count else {
                throw .inflatedShort(declared: output.count, actual: produced)
            }
            guard stream.avail_in == 0 else {
                throw .corruptCompressedData(reason: "\(stream.avail_in) bytes follow the end of the zlib stream")
            }
        case Z_BUF_ERROR:
            // Input ran out before the stream ended.
            throw .corruptCompressedData(reason: "the zlib stream is truncated after \(produced) bytes of output")
        default:
            throw .corruptCompressedData(reason: Self.message(stream.msg, status))
        }
    }

    /// Inflates into a new array of exactly `declaredSize` bytes (tests and tools).
    public func inflate(_ input: [UInt8], declaredSize: Int) throws(WireError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: declaredSize)
        let result: Result<Void, WireError> = input.withUnsafeBytes { inBytes in
            output.withUnsafeMutableBytes { outBytes in
                Result { () throws(WireError) in try inflate(inBytes, into: outBytes) }
            }
        }
        try result.get()
        return output
    }

    private static func message(_ msg: UnsafeMutablePointer<CChar>?, _ status: Int32) -> String {
        if let msg { return String(cString: msg) }
        return "zlib status \(status)"
    }
}
