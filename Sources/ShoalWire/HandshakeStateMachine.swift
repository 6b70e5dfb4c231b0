/// The version handshake that opens every connection, as a value fed events.
///
/// The side that connected (initiator) sends `hello` listing the versions it
/// speaks; the side that accepted (responder) answers `helloAck` with the
/// highest version both speak, or `error` `unsupported_version` and closes.
/// No other frame is accepted before the handshake completes.
///
/// ```
///   initiator: idle --start--> awaitingAck --helloAck--> established
///   responder: awaitingHello --hello--> established (sends helloAck)
///   any state --anything unexpected--> failed
/// ```
public struct HandshakeStateMachine: Sendable {
    public enum Role: Sendable { case initiator, responder }

    enum State: Sendable, Equatable {
        case idle
        case awaitingAck
        case awaitingHello
        case established(version: Int)
        case failed
    }

    /// What the connection should do next.
    public enum Action: Sendable, Equatable {
        /// Send this message (a frame with request id 0).
        case send(Message)
        /// The handshake is complete at this version; send `reply` first if given.
        case established(version: Int, reply: Message?)
        /// Give up: send `reply` if given, then close; report `error`.
        case fail(WireError, reply: Message?)
    }

    private var state: State
    private let role: Role
    private let localRole: String
    private let software: String
    /// Versions this side speaks.
    public let supportedVersions: [Int]

    /// - Parameters:
    ///   - localRole: what this side says it is (`"peer"`, `"tracker"`, `"tool"`).
    public init(role: Role, localRole: String, software: String, supportedVersions: [Int] = [Int(FrameHeader.currentVersion)]) {
        self.role = role
        self.localRole = localRole
        self.software = software
        self.supportedVersions = supportedVersions
        self.state = role == .initiator ? .idle : .awaitingHello
    }

    /// The agreed version, once established.
    public var version: Int? {
        if case let .established(version) = state { return version }
        return nil
    }

    /// The initiator's first step.
    public mutating func start() -> Action {
        precondition(role == .initiator && state == .idle, "only an idle initiator starts a handshake")
        state = .awaitingAck
        return .send(.hello(Hello(versions: supportedVersions, role: localRole, software: software)))
    }

    /// Feeds one received message. Once established, the handshake has no
    /// more business with the connection: a message fed then fails it.
    public mutating func receive(_ message: Message) -> Action {
        switch (state, message) {
        case let (.awaitingHello, .hello(hello)):
            guard hello.protocol == "shoal" else {
                state = .failed
                return .fail(.handshakeFailed(reason: "the remote side speaks \(hello.protocol.debugDescription), not shoal"),
                             reply: .error(ErrorReply(code: .badRequest, message: "this is a Shoal \(localRole); expected protocol \"shoal\"")))
            }
            guard let common = Set(hello.versions).intersection(supportedVersions).max() else {
                state = .failed
                let mine = supportedVersions.map(String.init).joined(separator: ", ")
                let theirs = hello.versions.map(String.init).joined(separator: ", ")
                return .fail(.handshakeFailed(reason: "no common protocol version (remote speaks \(theirs), this side \(mine))"),
                             reply: .error(ErrorReply(code: .unsupportedVersion, message: "this \(localRole) speaks protocol version \(mine) but you offered \(theirs); upgrade the older side")))
            }
            state = .established(version: common)
            return .established(version: common, reply: .helloAck(HelloAck(version: common, role: localRole, software: software)))
        case let (.awaitingAck, .helloAck(ack)):
            guard supportedVersions.contains(ack.version) else {
                state = .failed
                return .fail(.handshakeFailed(reason: "the remote side chose version \(ack.version), which this side does not speak"), reply: nil)
            }
            state = .established(version: ack.version)
            return .established(version: ack.version, reply: nil)
        case let (.awaitingAck, .error(reply)):
            state = .failed
            return .fail(reply.wireError, reply: nil)
        default:
            state = .failed
            return .fail(.handshakeFailed(reason: "expected a handshake, received \(Self.name(of: message))"),
                         reply: role == .responder ? .error(ErrorReply(code: .badRequest, message: "open the connection with hello")) : nil)
        }
    }

    static func name(of message: Message) -> String { message.type.description }
}
