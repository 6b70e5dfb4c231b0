import ShoalWire

/// What went wrong with a connection. Messages say what to do next.
public enum NetError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nobody answered at that address.
    case connectFailed(host: String, port: Int, reason: String)
    /// Binding a listening socket failed.
    case bindFailed(host: String, port: Int, reason: String)
    /// No reply within the time allowed.
    case timedOut(operation: String, seconds: Double)
    /// The connection closed before the reply came.
    case connectionClosed(peer: String)
    /// The remote side broke the protocol.
    case wire(WireError)
    /// The reply was not the one the request calls for.
    case unexpectedReply(expected: String, received: String)
    /// The server's certificate is not the one pinned; `advice` says what to do.
    case fingerprintMismatch(peer: String, expected: String, presented: String, advice: String)
    /// A TLS client met a server that speaks in clear.
    case notTLS(peer: String, advice: String)
    /// The TLS handshake failed for another reason.
    case tlsFailed(peer: String, reason: String)
    /// The hello of a pipelined connection was not answered as it should
    /// be; the requests sent behind it fail with this.
    case handshakeFailed(peer: String, reason: String)

    public var description: String {
        switch self {
        case let .connectFailed(host, port, reason):
            return "cannot connect to \(host):\(port) (\(reason)); check that it is running and the address is right"
        case let .bindFailed(host, port, reason):
            return "cannot listen on \(host):\(port) (\(reason)); pick another port or stop what is using it"
        case let .timedOut(operation, seconds):
            return "\(operation) got no answer within \(Self.format(seconds)) s; the other side is down or overloaded"
        case let .connectionClosed(peer):
            return "the connection to \(peer) closed unexpectedly"
        case let .wire(error):
            return error.description
        case let .unexpectedReply(expected, received):
            return "expected \(expected) but received \(received); the other side is confused or incompatible"
        case let .fingerprintMismatch(peer, expected, presented, advice):
            return "\(peer) presented a certificate with SHA-256 fingerprint \(presented), but \(expected) was expected: refused, nothing was sent. \(advice)"
        case let .notTLS(peer, advice):
            return "\(peer) answered in clear, not TLS; \(advice)"
        case let .tlsFailed(peer, reason):
            return "the TLS handshake with \(peer) failed: \(reason)"
        case let .handshakeFailed(peer, reason):
            return "the handshake with \(peer) failed: \(reason)"
        }
    }

    private static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.1f", seconds)
    }
}
