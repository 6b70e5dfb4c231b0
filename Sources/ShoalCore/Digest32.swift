/// Thirty-two bytes held inline (no heap allocation): the storage behind
/// ``ChunkDigest`` and ``ContentID``.
///
/// Stored as four big-endian words so that equality and hashing are a few
/// integer compares, and a manifest of a million chunks stays one flat array.
@usableFromInline
struct Digest32: Hashable, Sendable {
    @usableFromInline var w0, w1, w2, w3: UInt64

    /// The number of bytes in a SHA-256 digest.
    @usableFromInline static let byteCount = 32

    /// Reads exactly 32 bytes; returns nil for any other length.
    @inlinable
    init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == Self.byteCount else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var index = bytes.startIndex
        for wordIndex in 0..<4 {
            var word: UInt64 = 0
            for _ in 0..<8 {
                word = (word << 8) | UInt64(bytes[index])
                index = bytes.index(after: index)
            }
            switch wordIndex {
            case 0: words.0 = word
            case 1: words.1 = word
            case 2: words.2 = word
            default: words.3 = word
            }
        }
        (w0, w1, w2, w3) = words
    }

    /// Reads the 32 bytes at `offset` of `raw`, which must hold them.
    @inlinable
    init(loading raw: UnsafeRawBufferPointer, at offset: Int) {
        precondition(offset >= 0 && raw.count - offset >= Self.byteCount, "32 bytes to read")
        w0 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        w1 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        w2 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
        w3 = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self))
    }

    /// Parses 64 hexadecimal digits (either case); nil for anything else.
    init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let hi = Self.nibble(utf8[i]), let lo = Self.nibble(utf8[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        self.init(bytes: bytes)
    }

    /// The 32 bytes, most significant first.
    var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Self.byteCount)
        append(to: &out)
        return out
    }

    /// Appends the 32 bytes, most significant first, without an array of
    /// their own (a manifest's encoding appends thousands of them).
    @inlinable
    func append(to out: inout [UInt8]) {
        withUnsafeBytes(of: (w0.bigEndian, w1.bigEndian, w2.bigEndian, w3.bigEndian)) { out.append(contentsOf: $0) }
    }

    /// Lowercase hexadecimal, 64 characters.
    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
