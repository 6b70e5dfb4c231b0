import CZlib

/// A reusable zlib (RFC 1950) compressor over Debian's C zlib.
///
/// One `Deflater` keeps one `z_stream` for its whole life and resets it
/// between chunks, so compressing many chunks costs no allocations. It is not
/// thread-safe: give each connection or worker its own.
public final class Deflater {
    private var stream = z_stream()
    /// The zlib level, 0 (store) ... 9 (smallest).
    public let level: Int32

    /// A compressor at `level` (see ``CompressionPolicy/defaultLevel``).
    public init(level: Int32) {
        precondition((0...9).contains(level), "zlib level must be 0...9")
        self.level = level
        let status = shoal_deflate_init(&stream, level)
        precondition(status == Z_OK, "deflateInit2 failed (\(status)): out of memory")
    }

    deinit { deflateEnd(&stream) }

    /// The most bytes compressing `count` bytes can produce.
    public func bound(for count: Int) -> Int {
        Int(deflateBound(&stream, uLong(count)))
    }

    /// Compresses all of `input` as one complete zlib stream into `output`.
    /// Returns the compressed size, or nil if it does not fit in `output`
    /// (so a caller that sizes `output` to its "worth it" limit stops early).
    public func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        deflateReset(&stream)
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        stream.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(output.count)
        let status = deflate(&stream, Z_FINISH)
        defer {
            stream.next_in = nil
            stream.next_out = nil
        }
        guard status == Z_STREAM_END else { return nil }
        return output.count - Int(stream.avail_out)
    }

    /// Compresses `input` into a new array (convenience for tests and tools).
    public func compress(_ input: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: bound(for: input.count))
        let size = input.withUnsafeBytes { inBytes in
            output.withUnsafeMutableBytes { compress(inBytes, into: $0) }
        }
        output.removeSubrange(size!...)
        return output
    }
}
