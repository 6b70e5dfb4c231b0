/// Which chunks of a file a peer holds: one bit per chunk.
///
/// Bit `i` lives in byte `i / 8` at position `7 - i % 8` (most significant
/// bit first), which is also how ``bytes`` lays it out on the wire.
///
/// In memory the bits are 64-bit words, chunk `i` at bit `i % 64` of word
/// `i / 64`, and bits past ``count`` always clear; every walk over the map
/// (``indices``, ``bytes``, ``firstIndex(from:)``, decoding) goes a word at a
/// time, skipping empty words, so it costs `count / 64` plus the chunks held.
public struct ChunkMap: Hashable, Sendable {
    /// The number of chunks the map covers.
    public let count: Int
    /// The bits, 64 chunks a word, least significant bit first.
    internal private(set) var words: [UInt64]
    /// The number of chunks held.
    public private(set) var heldCount: Int

    /// A map of `count` chunks, none held (or all, if `full`).
    public init(count: Int, full: Bool = false) {
        precondition(count >= 0)
        self.count = count
        self.words = Array(repeating: full ? ~0 : 0, count: (count + 63) / 64)
        self.heldCount = full ? count : 0
        if full, count % 64 != 0 { words[words.count - 1] = Self.lowBits(count % 64) }
    }

    /// A map of `count` chunks holding `indices` (each in `0..<count`; repeats allowed).
    public init(count: Int, indices: some Sequence<Int>) {
        self.init(count: count)
        for index in indices { insert(index) }
    }

    /// Decodes the wire layout; nil if `bytes` is not exactly `ceil(count/8)`
    /// long or sets bits past `count`.
    public init?(count: Int, bytes: some Collection<UInt8>) {
        guard count >= 0, bytes.count == (count + 7) / 8 else { return nil }
        let decoded = bytes.withContiguousStorageIfAvailable { Self.decode(count: count, $0) } ?? Self.decode(count: count, Array(bytes))
        guard let decoded else { return nil }
        self.count = count
        self.words = decoded
        self.heldCount = decoded.reduce(0) { $0 + $1.nonzeroBitCount }
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
    public var indices: [Int] {
        var out: [Int] = []
        out.reserveCapacity(heldCount)
        forEachIndex { out.append($0) }
        return out
    }

    /// Calls `body` with each held index, ascending, a word at a time.
    public func forEachIndex(_ body: (Int) throws -> Void) rethrows {
        for (w, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                try body(w << 6 | bits.trailingZeroBitCount)
                bits &= bits &- 1
            }
        }
    }

    /// The first held index at or after `start` (ascending, no wrapping); nil if none.
    public func firstIndex(from start: Int) -> Int? {
        let start = max(start, 0)
        guard start < count else { return nil }
        var w = start >> 6
        var bits = words[w] & ~Self.lowBits(start & 63)
        while bits == 0 {
            w += 1
            guard w < words.count else { return nil }
            bits = words[w]
        }
        return w << 6 | bits.trailingZeroBitCount
    }

    /// The chunks `other` holds that this map does not, and those this map
    /// holds that `other` does not, ascending: what changes when a holder's
    /// map is replaced by `other`. Both maps must cover the same count.
    public func changes(to other: ChunkMap) -> (gained: [Int], lost: [Int]) {
        precondition(count == other.count, "maps of \(count) and \(other.count) chunks")
        var gained: [Int] = []
        var lost: [Int] = []
        for w in words.indices where words[w] != other.words[w] {
            var added = other.words[w] & ~words[w]
            while added != 0 { gained.append(w << 6 | added.trailingZeroBitCount); added &= added &- 1 }
            var removed = words[w] & ~other.words[w]
            while removed != 0 { lost.append(w << 6 | removed.trailingZeroBitCount); removed &= removed &- 1 }
        }
        return (gained, lost)
    }

    /// The wire layout: `ceil(count/8)` bytes, most significant bit first.
    /// Byte `byteIndex` of ``bytes`` alone (chunks `8 × byteIndex` to
    /// `8 × byteIndex + 7`), without building the rest.
    public func byte(at byteIndex: Int) -> UInt8 {
        var value: UInt8 = 0
        for bit in 0..<8 where contains(byteIndex * 8 + bit) { value |= 0x80 >> UInt8(bit) }
        return value
    }

    public var bytes: [UInt8] {
        let length = (count + 7) / 8
        return [UInt8](unsafeUninitializedCapacity: length) { out, initialized in
            for (w, word) in words.enumerated() {
                var wire = Self.reverseBitsInBytes(word)
                for b in 0..<min(8, length - w * 8) {
                    out[w * 8 + b] = UInt8(truncatingIfNeeded: wire)
                    wire >>= 8
                }
            }
            initialized = length
        }
    }

    // MARK: Words

    /// The `n` low bits set (`n` in 0...63).
    static func lowBits(_ n: Int) -> UInt64 { (1 << UInt64(n)) &- 1 }

    /// Reverses the bit order inside each byte of `x`: the wire's most
    /// significant bit first becomes the words' least significant bit first, and back.
    static func reverseBitsInBytes(_ x: UInt64) -> UInt64 {
        var x = x
        x = (x >> 1) & 0x5555_5555_5555_5555 | (x & 0x5555_5555_5555_5555) << 1
        x = (x >> 2) & 0x3333_3333_3333_3333 | (x & 0x3333_3333_3333_3333) << 2
        x = (x >> 4) & 0x0F0F_0F0F_0F0F_0F0F | (x & 0x0F0F_0F0F_0F0F_0F0F) << 4
        return x
    }

    /// The words of a wire layout already checked to be `ceil(count/8)` bytes; nil if it sets bits past `count`.
    private static func decode(count: Int, _ bytes: some RandomAccessCollection<UInt8>) -> [UInt64]? {
        var words = [UInt64](repeating: 0, count: (count + 63) / 64)
        var i = bytes.startIndex
        for w in words.indices {
            var wire: UInt64 = 0
            var shift: UInt64 = 0
            while shift < 64 && i != bytes.endIndex {
                wire |= UInt64(bytes[i]) << shift
                shift += 8
                i = bytes.index(after: i)
            }
            words[w] = reverseBitsInBytes(wire)
        }
        if count % 64 != 0, let last = words.last, last & ~lowBits(count % 64) != 0 { return nil }
        return words
    }
}
