import ShoalWire
import Testing

@Suite("Handshake state machine")
struct HandshakeStateMachineTests {
    /// Both sides reach the same version, the responder answering helloAck.
    @Test func happyPath() {
        var client = HandshakeStateMachine(role: .initiator, localRole: "peer", software: "a")
        var server = HandshakeStateMachine(role: .responder, localRole: "tracker", software: "b")
        guard case let .send(hello) = client.start() else { Issue.record("no hello"); return }
        guard case let .established(version, reply?) = server.receive(hello) else { Issue.record("server did not establish"); return }
        #expect(version == 1)
        #expect(client.receive(reply) == .established(version: 1, reply: nil))
        #expect(client.version == 1 && server.version == 1)
    }

    /// The highest common version wins.
    @Test func picksHighestCommonVersion() {
        var server = HandshakeStateMachine(role: .responder, localRole: "peer", software: "b", supportedVersions: [1, 2, 3])
        let action = server.receive(.hello(Hello(versions: [2, 3, 4], role: "peer", software: "x")))
        guard case .established(3, .helloAck(let ack)?) = action else { Issue.record("\(action)"); return }
        #expect(ack.version == 3)
    }

    /// No common version: an unsupported_version error and failure.
    @Test func noCommonVersion() {
        var server = HandshakeStateMachine(role: .responder, localRole: "tracker", software: "b")
        let action = server.receive(.hello(Hello(versions: [7], role: "peer", software: "x")))
        guard case let .fail(error, .error(reply)?) = action else { Issue.record("\(action)"); return }
        #expect(reply.code == .unsupportedVersion)
        #expect(error.description.contains("no common protocol version"))
    }

    /// Anything but hello first is refused; the client fails on an error reply or a bad version.
    @Test func unexpectedMessages() {
        var server = HandshakeStateMachine(role: .responder, localRole: "tracker", software: "b")
        guard case .fail(_, .error(let reply)?) = server.receive(.list(ListFiles(token: "x"))) else { Issue.record("accepted"); return }
        #expect(reply.code == .badRequest)

        var client = HandshakeStateMachine(role: .initiator, localRole: "peer", software: "a")
        _ = client.start()
        guard case .fail = client.receive(.error(ErrorReply(code: .unsupportedVersion, message: "no"))) else { Issue.record("accepted"); return }

        var client2 = HandshakeStateMachine(role: .initiator, localRole: "peer", software: "a")
        _ = client2.start()
        guard case .fail = client2.receive(.helloAck(HelloAck(version: 9, role: "tracker", software: "b"))) else { Issue.record("accepted"); return }

        var server2 = HandshakeStateMachine(role: .responder, localRole: "tracker", software: "b")
        var notShoal = Hello(role: "peer", software: "x")
        notShoal.protocol = "http"
        guard case .fail = server2.receive(.hello(notShoal)) else { Issue.record("accepted"); return }
    }

    /// The initiator keeps the responder's error code; a message after completion fails, it does not crash.
    @Test func errorCodeKeptAndLateMessagesFail() {
        var client = HandshakeStateMachine(role: .initiator, localRole: "peer", software: "a")
        _ = client.start()
        let action = client.receive(.error(ErrorReply(code: .unsupportedVersion, message: "too new")))
        #expect(action == .fail(.remote(code: "unsupported_version", message: "too new"), reply: nil))

        var server = HandshakeStateMachine(role: .responder, localRole: "tracker", software: "b")
        _ = server.receive(.hello(Hello(role: "peer", software: "x")))
        guard case .fail = server.receive(.hello(Hello(role: "peer", software: "x"))) else { Issue.record("accepted twice"); return }
    }
}
