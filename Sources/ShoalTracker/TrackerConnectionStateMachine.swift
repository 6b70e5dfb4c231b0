import ShoalWire

/// One client connection as the tracker sees it once the handshake is done:
/// anonymous, or carrying a session. Fed each message the client sends, it
/// says what to do with it; fed login and logout outcomes, it tracks which
/// session to end when the connection closes.
public struct TrackerConnectionStateMachine: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case anonymous
        case loggedIn(SessionToken)
        case closed
    }

    /// What to do with a received message.
    public enum Action: Sendable, Equatable {
        /// A request for the tracker.
        case handle
        /// The answer to our own `checkActive`: nothing to do (receiving it was the point).
        case ignore
        /// The client asks whether we are alive: answer `active` with this nonce.
        case answerProbe(nonce: UInt32)
        /// Refuse with this error; the connection stays open.
        case refuse(TrackerError)
    }

    public private(set) var state: State = .anonymous

    public init() {}

    /// The session this connection carries, if any.
    public var session: SessionToken? {
        if case let .loggedIn(token) = state { return token }
        return nil
    }

    public mutating func receive(_ message: Message) -> Action {
        guard state != .closed else { return .refuse(.badRequest("the connection is closing")) }
        switch message {
        case .register, .login, .logout, .announce, .list, .details, .manifest, .report, .status:
            return .handle
        case .active:
            return .ignore
        case let .checkActive(probe):
            return .answerProbe(nonce: probe.nonce)
        case .hello:
            return .refuse(.badRequest("the handshake is already done; send requests"))
        default:
            return .refuse(.badRequest("\(message.type) is not a request a tracker serves"))
        }
    }

    /// A login on this connection succeeded; returns the session it replaces, if any.
    public mutating func loggedIn(_ token: SessionToken) -> SessionToken? {
        let previous = session
        state = .loggedIn(token)
        return previous
    }

    /// The session was ended by a logout.
    public mutating func loggedOut() {
        if case .loggedIn = state { state = .anonymous }
    }

    /// The connection closed; returns the session to end, if any.
    public mutating func closed() -> SessionToken? {
        let previous = session
        state = .closed
        return previous
    }
}
