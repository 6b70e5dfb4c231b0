import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns SIGINT and SIGTERM into a call, so a server can shut down cleanly
/// (close connections, close its database, exit 0) instead of dying.
public final class TerminationSignals: @unchecked Sendable {
    // The sources are created once and only cancelled in deinit.
    private var sources: [any DispatchSourceSignal] = []

    /// Calls `handler` (once per signal received) on SIGINT or SIGTERM.
    public init(_ handler: @escaping @Sendable (Int32) -> Void) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            sources.append(source)
        }
    }

    deinit {
        for source in sources { source.cancel() }
    }

    /// A signal's name for messages.
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(number)"
        }
    }
}
