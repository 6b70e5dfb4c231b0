import Foundation
import ShoalCore
import ShoalSamples
import ShoalWire

/// How fast this machine inflates and verifies compressed chunks: what a
/// download's stored rate is held against (``CompressionChoice``) to tell
/// whether its links are faster than inflating, where compressed chunks
/// cannot win. Measured once per process on 1 MiB of generated log lines
/// compressed at level 1, as seeders compress them (about 22 % of their
/// size): the best of three inflate-and-hash passes, a few milliseconds.
enum InflateCalibration {
    /// Bytes of file per second all the downloader's cores inflate and hash.
    static let capacity: Double = Double(ProcessInfoLite.activeProcessorCount) * perCore()

    /// ``capacity``, measured (the first time) on a thread of its own, so a
    /// download asks its first chunks meanwhile: the measure takes tens of
    /// milliseconds, a round trip or more on the links it matters for.
    static func measured() async -> Double {
        await Task.detached(priority: .utility) { capacity }.value
    }

    /// Bytes of file per second one core inflates and hashes.
    static func perCore() -> Double {
        let text = SampleData.logText(size: 1 << 20)
        let compressed = Deflater(level: 1).compress(text)
        let inflater = Inflater()
        var best = Double.infinity
        for _ in 0..<3 {
            let start = ContinuousClock.now
            guard let plain = try? inflater.inflate(compressed, declaredSize: text.count) else { return .infinity }
            _ = ChunkDigest(hashing: plain)
            best = min(best, (ContinuousClock.now - start).seconds)
        }
        return Double(text.count) / max(best, 1e-6)
    }
}
