import Logging
import Synchronization

/// A logger whose lines are kept in memory, so tests can check what was
/// logged (and that no secret ever was).
public final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])
    public init() {}

    /// A logger writing here.
    public func logger(label: String = "test", level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: label) { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    /// Everything logged so far.
    public var all: [String] { lines.withLock { $0 } }

    /// Whether any line contains `text`.
    public func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.append("\(event.level) \(event.message)")
        }
    }
}
