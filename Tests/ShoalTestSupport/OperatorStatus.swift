import ShoalNet
import ShoalTracker
import ShoalWire

extension TestTracker {
    /// The operator token this tracker wrote beside its database at start.
    public var operatorToken: String {
        (try? OperatorToken.read(from: server.configuration.operatorTokenFile)) ?? ""
    }
}

extension FramedConnection {
    /// The tracker's `status`, sent with the operator token.
    public func status(operatorToken: String) async throws -> TrackerStatus {
        guard case let .trackerStatus(reply) = try await request(.status(StatusRequest(token: operatorToken))) else {
            throw NetError.unexpectedReply(expected: "trackerStatus", received: "something else")
        }
        return reply
    }
}
