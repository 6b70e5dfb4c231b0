/// Which chunks of a file a peer holds: one bit per chunk.
///
/// Bit `i` lives in byte `i / 8` at position `7 - i % 8` (most significant
/// bit first), which is also how ``bytes`` lays it out on the wire.
public struct ChunkMap: Hashable, Sendable {
    /// The number of chunks the map covers.
    public let count: Int
    private var words: [UInt64]
    /// The number of chunks held.
    public private(set) var heldCount: Int

    /// A map of `count` chunks, none held (or all, if `full`).
    public init(count: Int, full: Bool = false) {
        precondition(count >= 0)
        self.count = count
        self.words = Array(repeating: 0, count: (count + 63) / 64)
        self.heldCount = 0
        if full { for i in 0..<count { insert(i) } }
    }

    /// Decodes the wire layout; nil if `bytes` is not exactly `ceil(count/8)`
    /// long or sets bits past `count`.
    public init?(count: Int, bytes: some Collection<UInt8>) {
        guard count >= 0, bytes.count == (count + 7) / 8 else { return nil }
        self.init(count: count)
        for (byteIndex, byte) in bytes.enumerated() where byte != 0 {
            for bit in 0..<8 where byte & (0x80 >> UInt8(bit)) != 0 {
                let index = byteIndex * 8 + bit
                guard index < count else { return nil }
                insert(index)
            }
        }
    }

    /// Whether chunk `index` is held.
    public func contains(_ index: Int) -> Bool {
        guard index >= 0 && index < count else { return false }
        return words[index >> 6] & (1 << UInt64(index & 63)) != 0
    }

    /// Marks chunk `index` held; returns whether it was new.
    @discardableResult
    public mutating func insert(_ index: Int) -> Bool {
        precondition(index >= 0 && index < count, "chunk \(index) out of range 0..<\(count)")
        let mask: UInt64 = 1 << UInt64(index & 63)
        if words[index >> 6] & mask != 0 { return false }
        words[index >> 6] |= mask
        heldCount += 1
        return true
    }

    /// Marks chunk `index` missing.
    public mutating func remove(_ index: Int) {
        precondition(index >= 0 && index < count)
        let mask: UInt64 = 1 << UInt64(index & 63)
        if words[index >> 6] & mask != 0 {
            words[index >> 6] &= ~mask
            heldCount -= 1
        }
    }

    /// Whether every chunk is held.
    public var isComplete: Bool { heldCount == count }

    /// The indices held, ascending.
    public var indices: [Int] { (0..<count).filter(contains) }

    /// The wire layout: `ceil(count/8)` bytes, most significant bit first.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: (count + 7) / 8)
        for i in 0..<count where contains(i) { out[i / 8] |= 0x80 >> UInt8(i % 8) }
        return out
    }
}
