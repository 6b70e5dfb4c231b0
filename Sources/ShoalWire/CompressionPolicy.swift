/// When a chunk is worth compressing, and how hard.
///
/// A chunk travels compressed only if zlib shrinks it by at least
/// ``minimumSavings``; otherwise it travels as stored bytes and the receiver
/// skips inflate. Chunks of at least twice ``sampleSize`` are first judged by
/// compressing one sample from their middle: data that will not shrink (media,
/// archives, random bytes) then costs an eighth of a full deflate on 256 KiB
/// chunks, and nothing at all once ``CompressionMemo`` remembers the verdict.
public struct CompressionPolicy: Sendable, Hashable {
    /// Level 1: on this project's machines it compresses log-like text to about
    /// 22 % at 140-160 MB/s per core, where level 6 reaches 18 % at 47 MB/s.
    /// The wire is rarely the bottleneck on a LAN; the CPU is.
    public static let defaultLevel: Int32 = 1

    /// The zlib level, 1...9; 0 turns compression off.
    public var level: Int32
    /// The fraction a chunk must shrink by to travel compressed (0.10 = 10 %).
    public var minimumSavings: Double
    /// The size of the sample that pre-judges large chunks; 0 disables sampling.
    public var sampleSize: Int

    public init(level: Int32 = CompressionPolicy.defaultLevel, minimumSavings: Double = 0.10, sampleSize: Int = 32 * 1024) {
        precondition((0...9).contains(level), "zlib level must be 0...9")
        precondition(minimumSavings >= 0 && minimumSavings < 1)
        self.level = level
        self.minimumSavings = minimumSavings
        self.sampleSize = max(0, sampleSize)
    }

    /// Compression off: every chunk travels stored.
    public static let off = CompressionPolicy(level: 0)

    /// Whether compression is on at all.
    public var isEnabled: Bool { level > 0 }

    /// The largest compressed size that is still worth sending for `count` raw bytes.
    public func worthwhileLimit(for count: Int) -> Int {
        Int(Double(count) * (1 - minimumSavings))
    }
}
