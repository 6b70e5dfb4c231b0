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
        try await status(StatusRequest(token: operatorToken))
    }

    /// One page of the tracker's `status`.
    public func status(_ request: StatusRequest) async throws -> TrackerStatus {
        guard case let .trackerStatus(reply) = try await self.request(.status(request)) else {
            throw NetError.unexpectedReply(expected: "trackerStatus", received: "something else")
        }
        return reply
    }
}
