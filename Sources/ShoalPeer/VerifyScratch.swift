import ShoalWire
import Synchronization

/// What verifying a compressed chunk needs besides the frame: a chunk-sized
/// buffer to inflate into and an inflater. Kept for reuse, most recently
/// returned first (its buffer is the likeliest still in cache): allocating
/// a fresh megabyte per chunk costs a mapping and its page faults, and a
/// fresh inflater its zeroed state.
final class VerifyScratch: @unchecked Sendable {
    // Used by one task at a time, between `take` and `give`.
    let buffer: UnsafeMutableRawBufferPointer
    let inflater = Inflater()

    private init(size: Int) {
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// The most kept idle: as many as chunks verified at once, and more.
    static let capacity = 16
    private static let idle = Mutex<[VerifyScratch]>([])

    /// Scratch with a buffer of at least `size` bytes; give it back with ``give(_:)``.
    static func take(size: Int) -> VerifyScratch {
        let reused = idle.withLock { idle -> VerifyScratch? in
            guard let index = idle.lastIndex(where: { $0.buffer.count >= size }) else { return nil }
            return idle.remove(at: index)
        }
        return reused ?? VerifyScratch(size: size)
    }

    static func give(_ scratch: VerifyScratch) {
        idle.withLock { idle in
            if idle.count < capacity { idle.append(scratch) }
        }
    }
}
