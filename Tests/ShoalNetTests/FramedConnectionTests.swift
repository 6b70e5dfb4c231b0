import NIOCore
import ShoalNet
import ShoalWire
import Testing

/// The initiating side of a connection against a real server on loopback.
@Suite("Framed connection", .timeLimit(.minutes(1)))
struct FramedConnectionTests {
    /// A server that completes the handshake, then reads requests and never answers them.
    func silentServer() async throws -> (FramedServer, Task<Void, Never>) {
        let server = try await FramedServer.bind(host: "127.0.0.1", port: 0)
        let task = Task {
            await server.run { connection in
                try? await connection.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "peer")
                    while try await iterator.next() != nil {}
                }
            }
        }
        return (server, task)
    }

    /// Cancelling the task that waits for a reply ends the wait, with
    /// CancellationError; the connection stays usable for other requests.
    /// The request's timeout (an hour) is far past the suite's time limit, so
    /// a wait that only its timeout ended fails the test without any clock
    /// here (a bound in seconds failed once on a loaded CI machine).
    @Test func cancellingARequestEndsItsWait() async throws {
        let (server, task) = try await silentServer()
        let connection = try await FramedConnection.connect(host: "127.0.0.1", port: server.port, role: "peer")
        let waiting = Task {
            try await connection.request(.checkActive(CheckActive(nonce: 7)), timeout: .seconds(3600))
        }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(connection.isOpen)
        // Cancelled before it was even sent: it fails the same way.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await connection.request(.checkActive(CheckActive(nonce: 8)), timeout: .seconds(3600))
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        // An unanswered request still times out by itself.
        await #expect(throws: NetError.timedOut(operation: "checkActive", seconds: 0.2)) {
            try await connection.request(.checkActive(CheckActive(nonce: 9)), timeout: .milliseconds(200))
        }
        connection.close()
        server.shutdown()
        await task.value
    }

    /// A pipelined connection returns before the hello is answered; a
    /// request sent right behind the hello is read after it and answered.
    @Test func requestsFollowAPipelinedHello() async throws {
        let server = try await FramedServer.bind(host: "127.0.0.1", port: 0)
        let task = Task {
            await server.run { connection in
                try? await connection.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "peer")
                    while let frame = try await iterator.next() {
                        let probe = try CheckActive(frame: frame)
                        try await outbound.write(.frame(try Active(nonce: probe.nonce).frame(requestID: frame.requestID)))
                    }
                }
            }
        }
        let connection = try await FramedConnection.connect(host: "127.0.0.1", port: server.port, role: "peer", pipelined: true)
        #expect(connection.connectRoundTrip > 0)
        let reply = try await connection.request(.checkActive(CheckActive(nonce: 42)), timeout: .seconds(30))
        guard case let .active(active) = reply else { Issue.record("expected active, got \(reply)"); return }
        #expect(active.nonce == 42)
        connection.close()
        server.shutdown()
        await task.value
    }

    /// When the hello of a pipelined connection is refused, the requests
    /// sent behind it fail with that, and the connection closes.
    @Test func aRefusedPipelinedHelloFailsTheRequests() async throws {
        let server = try await FramedServer.bind(host: "127.0.0.1", port: 0)
        let task = Task {
            await server.run { connection in
                try? await connection.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    guard let hello = try await iterator.next() else { return }
                    let refusal = ErrorReply(code: .unsupportedVersion, message: "this server speaks another version")
                    try await outbound.write(.frame(try refusal.frame(requestID: hello.requestID)))
                    // Whatever follows the hello is read and left unanswered.
                    while try await iterator.next() != nil {}
                }
            }
        }
        let connection = try await FramedConnection.connect(host: "127.0.0.1", port: server.port, role: "peer", pipelined: true)
        let error = await #expect(throws: NetError.self) {
            try await connection.request(.checkActive(CheckActive(nonce: 1)), timeout: .seconds(30))
        }
        guard case let .handshakeFailed(_, reason) = error else { Issue.record("expected handshakeFailed, got \(String(describing: error))"); return }
        #expect(reason.contains("another version"))
        await connection.closed()
        #expect(!connection.isOpen)
        server.shutdown()
        await task.value
    }
}
