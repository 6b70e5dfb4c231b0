#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShoalPeer

/// A live progress line on stderr: rewritten in place on a terminal, a new
/// line every second otherwise (logs, pipes).
final class ProgressLine: @unchecked Sendable {
    // Touched from the download's progress callbacks, which come one at a time.
    private let lock = NSLock()
    private let isTerminal = isatty(2) != 0
    private var lastPrint = Date.distantPast
    private let interval: Double

    init(interval: Double? = nil) {
        self.interval = interval ?? (isatty(2) != 0 ? 0.1 : 1.0)
    }

    func update(_ progress: DownloadProgress, final: Bool = false) {
        lock.withLock {
            let now = Date()
            guard final || now.timeIntervalSince(lastPrint) >= interval else { return }
            lastPrint = now
            let percent = Int((progress.fraction * 100).rounded(.down))
            let filled = min(20, percent / 5)
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 20 - filled)
            let holders = progress.chunksByHolder.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            let text = String(format: "[%@] %3d%%  %6.1f MB/s  %d peer%@", bar, percent, progress.bytesPerSecond / 1e6,
                              progress.holdersInUse, progress.holdersInUse == 1 ? "" : "s") + (holders.isEmpty ? "" : "  (chunks: \(holders))")
            if isTerminal {
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + text + (final ? "\n" : "")).utf8))
            } else {
                FileHandle.standardError.write(Data((text + "\n").utf8))
            }
        }
    }
}
