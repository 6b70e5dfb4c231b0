/// Whether to ask a holder for chunks compressed or stored, decided per
/// holder from what the downloader measures.
///
/// Compression trades the link for the downloader's CPU: a compressed chunk
/// costs fewer bytes on the wire but an inflate before its SHA-256, which here
/// runs at a few hundred MB/s per core against about 1.4 GB/s for hashing
/// alone. So a holder whose link carries more raw bytes per second than the
/// downloader can inflate for it should send stored chunks (a seeder then
/// sends them with `sendfile`, straight from the file), and one on a slower
/// link compressed ones, which multiply what the link carries.
///
/// The rule, for holder `h`, whose share of the inflate budget is
/// `inflateRate × cores / activeHolders`:
/// - until its first chunk arrives `h` is asked for stored chunks: their
///   throughput is the link's own rate, with no inflate in the way;
/// - asking stored, `h` goes on with stored chunks while the link carries at
///   least 80 % of its share, and goes to compressed below that: there the
///   link is the limit, and compression multiplies it;
/// - asking compressed, the link's rate is the wire bytes per second it
///   delivers; `h` goes back to stored once that reaches 90 % of its share.
/// The gap between 80 and 90 % keeps a holder from flapping.
public struct CompressionChoice: Sendable {
    /// What the user asked for.
    public enum Mode: String, Sendable, CaseIterable {
        /// Decide per holder, as above.
        case auto
        /// Always ask for compressed chunks (a metered link, say): holders
        /// compress whatever shrinks by 10 %.
        case always
        /// Always ask for stored chunks: no inflate, no compressing.
        case never
    }

    public let mode: Mode
    /// The downloader's inflate-and-hash rate per core, in raw bytes per
    /// second: measured on compressed chunks as they arrive, starting from
    /// what this kind of machine does on log-like text.
    public private(set) var inflateRate: Double
    /// Cores that inflate at once.
    public let cores: Int
    /// Holders asked for compressed chunks.
    public private(set) var compressedHolders: Set<Int> = []
    /// Wire bytes per raw byte of each holder's recent chunks.
    private var wireRatio: [Int: Double] = [:]

    public init(mode: Mode = .auto, inflateRate: Double = 400e6, cores: Int = CompressionChoice.processorCount) {
        self.mode = mode
        self.inflateRate = inflateRate
        self.cores = max(1, cores)
    }

    public static var processorCount: Int { max(1, sysconf_processors()) }

    /// A compressed chunk of `bytes` raw bytes took `seconds` to inflate and hash.
    public mutating func inflated(bytes: Int, seconds: Double) {
        guard seconds > 0 else { return }
        inflateRate = inflateRate * 0.8 + Double(bytes) / seconds * 0.2
    }

    /// A chunk of `raw` bytes came from `peer` in `wire` bytes.
    public mutating func received(from peer: Int, raw: Int, wire: Int) {
        guard raw > 0 else { return }
        let ratio = min(1, Double(wire) / Double(raw))
        wireRatio[peer] = wireRatio[peer].map { $0 * 0.7 + ratio * 0.3 } ?? ratio
    }

    /// Whether to ask `peer`, delivering `throughput` raw bytes per second
    /// (nil before its first chunk), for stored chunks now.
    public mutating func asksStored(peer: Int, throughput: Double?, activeHolders: Int) -> Bool {
        switch mode {
        case .always: return false
        case .never: return true
        case .auto: break
        }
        guard let throughput else { return !compressedHolders.contains(peer) }
        let share = inflateRate * Double(cores) / Double(max(1, activeHolders))
        if compressedHolders.contains(peer) {
            let link = throughput * (wireRatio[peer] ?? 1)
            if link >= 0.9 * share { compressedHolders.remove(peer) }
        } else if throughput < 0.8 * share {
            compressedHolders.insert(peer)
        }
        return !compressedHolders.contains(peer)
    }
}

#if canImport(Glibc)
import Glibc
private func sysconf_processors() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
#elseif canImport(Darwin)
import Darwin
private func sysconf_processors() -> Int { Int(sysconf(_SC_NPROCESSORS_ONLN)) }
#endif
