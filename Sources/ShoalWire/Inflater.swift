import CZlib

/// A reusable zlib (RFC 1950) decompressor that never writes past a bound.
///
/// It checks the stream's 2-byte header and requires its 4-byte trailer, but
/// inflates the deflate data in between raw, without zlib's Adler-32 check:
/// the caller verifies the output's SHA-256, which Adler-32 cannot add to.
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
        // RFC 1950: CMF (method 8, window up to 32 KiB), FLG (check bits, no preset dictionary), ..., Adler-32.
        guard input.count >= 6 else {
            throw .corruptCompressedData(reason: "the zlib stream is truncated (\(input.count) bytes)")
        }
        let cmf = input[0], flg = input[1]
        guard cmf & 0x0F == 8, cmf >> 4 <= 7, (UInt16(cmf) << 8 | UInt16(flg)) % 31 == 0 else {
            throw .corruptCompressedData(reason: "incorrect header check")
        }
        guard flg & 0x20 == 0 else { throw .corruptCompressedData(reason: "a preset dictionary is not allowed") }
        try inflateRaw(UnsafeRawBufferPointer(rebasing: input[2...]), into: output)
    }

    /// Inflates raw deflate data that must be followed by exactly the 4-byte trailer.
    private func inflateRaw(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(WireError) {
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
            // What is left must be the Adler-32 trailer, and only that.
            guard stream.avail_in == 4 else {
                if stream.avail_in < 4 {
                    throw .corruptCompressedData(reason: "the zlib stream is truncated: its checksum is missing")
                }
                throw .corruptCompressedData(reason: "\(stream.avail_in - 4) bytes follow the end of the zlib stream")
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
