import NIOCore
import ShoalNet

/// How a peer trusts its tracker's TLS certificate.
///
/// - `knownTrackers`: the fingerprint pinned in the known-trackers file, or,
///   for a tracker not in it yet, whatever it presents, which is then pinned.
/// - `pinned`: exactly this fingerprint (`--tracker-fingerprint`).
/// - `insecure`: no TLS at all (`--insecure`; the tracker must say it too).
public enum TrackerTrust: Sendable {
    case knownTrackers(KnownTrackers)
    case pinned(CertificateFingerprint)
    case insecure

    /// Connects to the tracker at `endpoint` and performs the handshake;
    /// pins the tracker's fingerprint if this is the first meeting.
    public func connect(to endpoint: Endpoint, role: String = "peer", timeout: TimeAmount = .seconds(10)) async throws -> FramedConnection {
        let plainAdvice = "it runs with --insecure: to talk to it in clear (passwords readable on the network) add --insecure here too, or better, restart the tracker without --insecure"
        switch self {
        case .insecure:
            // A tracker that wants TLS answers a clear hello with an error that says so.
            return try await FramedConnection.connect(host: endpoint.host, port: endpoint.port, role: role, timeout: timeout)
        case let .pinned(fingerprint):
            let pin = TLSPin(expected: fingerprint,
                             mismatchAdvice: "Check --tracker-fingerprint against the line the tracker prints at start; if the tracker's key really changed, give the new fingerprint.",
                             plainAdvice: plainAdvice)
            return try await FramedConnection.connect(host: endpoint.host, port: endpoint.port, role: role, timeout: timeout, security: .tls(pin))
        case let .knownTrackers(file):
            let known = try file.fingerprint(for: endpoint)
            let pin = TLSPin(expected: known,
                             mismatchAdvice: "Someone may be in the middle. If the tracker's key really changed, remove the line for \(endpoint) from \(file.path) and connect again (or give --tracker-fingerprint).",
                             plainAdvice: plainAdvice)
            let connection = try await FramedConnection.connect(host: endpoint.host, port: endpoint.port, role: role, timeout: timeout, security: .tls(pin))
            if known == nil, let presented = connection.serverFingerprint {
                do {
                    try file.pin(presented, for: endpoint)
                } catch {
                    connection.close()
                    throw error
                }
            }
            return connection
        }
    }
}
