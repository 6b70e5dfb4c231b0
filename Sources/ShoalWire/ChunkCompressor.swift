import NIOCore
import ShoalCore

/// Encodes chunk bytes for the wire following a ``CompressionPolicy``:
/// compressed when that pays, stored otherwise, remembering "does not pay" in a
/// shared ``CompressionMemo``. One per connection or worker (it owns a
/// ``Deflater``).
public final class ChunkCompressor {
    /// The rules it follows.
    public let policy: CompressionPolicy
    /// The shared verdicts.
    public let memo: CompressionMemo
    private let deflater: Deflater?
    private var scratch: UnsafeMutableRawBufferPointer

    /// What ``encode(_:key:into:)`` did.
    public enum Outcome: Sendable, Equatable {
        /// The bytes were written as they are.
        case stored
        /// A zlib stream of this many bytes was written.
        case compressed(size: Int)
    }

    public init(policy: CompressionPolicy = CompressionPolicy(), memo: CompressionMemo = CompressionMemo()) {
        self.policy = policy
        self.memo = memo
        self.deflater = policy.isEnabled ? Deflater(level: policy.level) : nil
        self.scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 0, alignment: 16)
    }

    deinit { scratch.deallocate() }

    /// Appends `chunk` to `out`, compressed if that pays, and says which.
    public func encode(_ chunk: UnsafeRawBufferPointer, key: CompressionMemo.Key?, into out: inout ByteBuffer) -> Outcome {
        if let compressedSize = compressIfWorthwhile(chunk, key: key) {
            out.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[0..<compressedSize]))
            return .compressed(size: compressedSize)
        }
        out.writeBytes(chunk)
        return .stored
    }

    /// Compresses into the scratch buffer; the size if it paid, nil if not.
    private func compressIfWorthwhile(_ chunk: UnsafeRawBufferPointer, key: CompressionMemo.Key?) -> Int? {
        guard let deflater, chunk.count > 0 else { return nil }
        if let key, memo.isIncompressible(key) { return nil }
        let sample = policy.sampleSize
        if sample > 0 && chunk.count >= 2 * sample {
            // Judge a sample from the middle first.
            let start = (chunk.count - sample) / 2
            let piece = UnsafeRawBufferPointer(rebasing: chunk[start..<start + sample])
            ensureScratch(deflater.bound(for: sample))
            let limit = policy.worthwhileLimit(for: sample)
            if deflater.compress(piece, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<limit])) == nil {
                if let key { memo.markIncompressible(key) }
                return nil
            }
        }
        let limit = policy.worthwhileLimit(for: chunk.count)
        ensureScratch(limit)
        guard let size = deflater.compress(chunk, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<limit])) else {
            if let key { memo.markIncompressible(key) }
            return nil
        }
        return size
    }

    private func ensureScratch(_ count: Int) {
        guard scratch.count < count else { return }
        scratch.deallocate()
        scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
    }
}
