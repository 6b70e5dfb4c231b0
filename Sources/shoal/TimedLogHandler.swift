#if canImport(Glibc)
import Glibc
#endif
import Logging

/// A log handler for `--log-level trace`: each line on stderr starts with
/// the wall-clock time in microseconds (Unix seconds), so that a trace of
/// one `shoal get` can be laid against the times another process took
/// (`shoal-bench links --get-log` writes when it started the process and
/// when it ended). The standard handler stamps whole seconds only.
struct TimedLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let fields = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let stamp = "\(time.tv_sec).\(String(repeating: "0", count: 6 - String(time.tv_nsec / 1000).count))\(time.tv_nsec / 1000)"
        let text = "\(stamp) \(event.level) \(label):\(fields) \(event.message)\n"
        // One write per line, so lines of several threads do not interleave.
        _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    }
}
