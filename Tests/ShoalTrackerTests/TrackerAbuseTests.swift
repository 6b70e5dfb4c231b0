import Foundation
import NIOCore
import ShoalCore
import ShoalNet
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// Broken frames, unknown requests, oversized input and idle connections:
/// each gets a clear error or is closed, and everyone else keeps being served.
@Suite("Tracker under bad input", .timeLimit(.minutes(2)))
struct TrackerAbuseTests {
    private func helloBytes() throws -> [UInt8] {
        Array(buffer: try Hello(role: "peer", software: "test").frame(requestID: 0).encoded())
    }

    private func decodeReplies(_ bytes: [UInt8]) -> [Message] {
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: bytes)
        var messages: [Message] = []
        while let frame = try? decoder.decodeFrame(&buffer), let message = try? Message(frame: frame) { messages.append(message) }
        return messages
    }

    /// Garbage, a wrong version and an oversize length get an error frame, then the connection closes.
    @Test func brokenFramesCloseTheConnection() async throws {
        // Raw frame bytes: in clear, so they reach the frame decoder (under TLS the refusal is the TLS layer's).
        let tracker = try await TestTracker.start(tls: false)
        let cases: [([UInt8], String)] = [
            (Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), "unsupported_version"),
            (Fixtures.bytes("frames/broken/wrong-version.frame"), "unsupported_version"),
            (Fixtures.bytes("frames/broken/unknown-type.frame"), "bad_request"),
            (Fixtures.bytes("frames/broken/oversize-length.frame"), "too_large"),
            (try helloBytes() + Fixtures.bytes("frames/broken/oversize-length.frame"), "too_large"),
            (try helloBytes() + Fixtures.bytes("frames/broken/undefined-flags.frame"), "bad_request"),
        ]
        for (bytes, code) in cases {
            // A generous read timeout: the tracker runs in this process, and a
            // full parallel run on two busy cores once took over 5 s to answer.
            let socket = try RawSocket(port: tracker.port, timeout: 30)
            socket.send(bytes)
            let (reply, closed) = await socket.readUntilClosedAsync()
            #expect(closed, "the connection stays open after \(code)")
            let codes = decodeReplies(reply).compactMap { message -> String? in
                if case let .error(error) = message { return error.code.rawValue }
                return nil
            }
            #expect(codes == [code])
        }
        // A truncated frame and silence: closed by the handshake deadline at the latest.
        let client = try await tracker.connect()
        #expect(try await client.status(operatorToken: tracker.operatorToken).registered == 0, "others are still served")
        client.close()
        await tracker.stopAndRemove()
    }

    /// Undecodable or unknown requests are refused, and the connection goes on.
    @Test(arguments: TestStore.allCases) func badRequestsAreRefused(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store)
        let client = try await tracker.connect()
        let code = await refusalCode { _ = try await client.request(.registered(Registered(user: "x"))) }
        #expect(code == "bad_request")
        let malformed = try await client.requestFrame { id in
            Frame(type: .login, requestID: id, payload: ByteBuffer(string: #"{"user": "x", "password": "#))
        }
        guard case let .error(reply) = try Message(frame: malformed) else { Issue.record("accepted"); return }
        #expect(reply.code == .badRequest)
        #expect(reply.message.contains("login"))
        let chunk = await refusalCode { _ = try await client.request(.chunkRequest(ChunkRequest(contentID: sampleManifest(1).contentID, index: 0))) }
        #expect(chunk == "bad_request")
        #expect(try await client.status(operatorToken: tracker.operatorToken).registered == 0, "the connection is still served")
        client.close()
        await tracker.stopAndRemove()
    }

    /// Large frames are refused before login; announces over the limits are refused after.
    @Test(arguments: TestStore.allCases) func oversizedAnnounces(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store) { configuration in
            configuration.limits.filesPerAnnounce = 5
            configuration.anonymousFrameLimit = 4096
        }
        // Before login a 100 kB announce is refused from its header, and the connection closed.
        let anonymous = try await tracker.connect()
        let files = (0..<600).map { AnnouncedFile(name: "file-\($0)", contentID: sampleManifest(1).contentID) }
        let big = Announce(token: "x", replace: true, files: files)
        #expect(await refusalCode { _ = try await anonymous.request(.announce(big)) } == "too_large")
        await anonymous.closed()

        let client = try await tracker.connect()
        let token = try await client.signUp("big")
        let many = (0..<6).map { ("f\($0)", sampleManifest(UInt8($0))) }
        #expect(await refusalCode { try await client.announce(token, many) } == "too_large")
        #expect(try await client.announce(token, Array(many.prefix(5))) == 5)
        client.close()
        await tracker.stopAndRemove()
    }

    /// Connections over the cap get `busy` and are closed; as slots free,
    /// clients are served again.
    @Test func connectionsOverTheCapGetBusy() async throws {
        // Raw sockets that never speak TLS: in clear, so the busy reply reaches them.
        let tracker = try await TestTracker.start(tls: false) { configuration in
            configuration.maximumConnections = 40
            configuration.handshakeTimeout = 120
        }
        // Forty idle connections fill the server (each counted from its accept)...
        var idle: [RawSocket] = []
        for _ in 0..<40 { idle.append(try RawSocket(port: tracker.port, timeout: 20)) }
        for _ in 0..<400 where tracker.server.connectionCount < 40 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(tracker.server.connectionCount == 40)
        // ...so each of twenty more is told `busy` and closed.
        var extra: [RawSocket] = []
        for _ in 0..<20 { extra.append(try RawSocket(port: tracker.port, timeout: 20)) }
        let outcomes = await withTaskGroup(of: (Bool, Bool).self) { group in
            for socket in extra {
                group.addTask {
                    let (bytes, closed) = await socket.readUntilClosedAsync()
                    let isBusy = self.decodeReplies(bytes).contains { if case let .error(e) = $0 { e.code == .busy } else { false } }
                    return (isBusy, closed)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter(\.0).count == 20, "every connection over the cap is told busy")
        #expect(outcomes.filter(\.1).count == 20, "every connection over the cap is closed")
        #expect(tracker.server.connectionCount == 40, "a refused connection takes no slot")
        // Slots free as the idle ones close; a client retries on busy.
        for socket in idle { socket.close() }
        var client: FramedConnection?
        for _ in 0..<50 where client == nil {
            client = try? await tracker.connect()
            if client == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let connected = try #require(client)
        _ = try await connected.signUp("after")
        connected.close()
        await tracker.stopAndRemove()
    }

    /// Idle connections that never say hello are closed by the handshake deadline.
    @Test func idleConnectionsAreClosedByTheHandshakeDeadline() async throws {
        let tracker = try await TestTracker.start(tls: false) { configuration in
            configuration.handshakeTimeout = 2
        }
        var sockets: [RawSocket] = []
        for _ in 0..<20 { sockets.append(try RawSocket(port: tracker.port, timeout: 30)) }
        let closed = await withTaskGroup(of: Bool.self) { group in
            for socket in sockets { group.addTask { await socket.readUntilClosedAsync().closed } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(closed == 20, "every idle connection was closed")
        for _ in 0..<100 where tracker.server.connectionCount > 0 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(tracker.server.connectionCount == 0)
        await tracker.stopAndRemove()
    }

    /// Hundreds of idle connections under the cap do not stop others being served.
    @Test func othersServedBesideIdleConnections() async throws {
        let tracker = try await TestTracker.start()
        var idle: [RawSocket] = []
        for _ in 0..<300 { idle.append(try RawSocket(port: tracker.port)) }
        let client = try await tracker.connect()
        let token = try await client.signUp("busy-day")
        try await client.announce(token, [("x", sampleManifest(9))])
        #expect(try await client.list(token).count == 1)
        for socket in idle { socket.close() }
        client.close()
        await tracker.stopAndRemove()
    }
}
