import Synchronization

/// Chunk-sized buffers kept for reuse: inflating a compressed chunk needs
/// one, and allocating a fresh megabyte per chunk costs a mapping, its page
/// faults and contention on the process's memory map.
final class ChunkBuffers: Sendable {
    static let shared = ChunkBuffers()
    /// The most buffers kept idle.
    let capacity = 16

    /// A buffer owned by whoever holds it: at most one task at a time.
    private struct Owned: @unchecked Sendable {
        let pointer: UnsafeMutableRawBufferPointer
    }

    private let idle = Mutex<[Owned]>([])

    /// A buffer of at least `size` bytes; give it back with ``give(_:)``.
    func take(size: Int) -> UnsafeMutableRawBufferPointer {
        let reused = idle.withLock { idle -> Owned? in
            guard let index = idle.firstIndex(where: { $0.pointer.count >= size }) else { return nil }
            return idle.remove(at: index)
        }
        return reused?.pointer ?? UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 64)
    }

    func give(_ buffer: UnsafeMutableRawBufferPointer) {
        let owned = Owned(pointer: buffer)
        let kept = idle.withLock { idle -> Bool in
            guard idle.count < capacity else { return false }
            idle.append(owned)
            return true
        }
        if !kept { buffer.deallocate() }
    }
}
