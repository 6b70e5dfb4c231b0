import NIOCore
import ShoalTestSupport
import ShoalNet
import ShoalWire
import Synchronization
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

    /// A request sent with a handler (no task waits for it): the reply
    /// reaches the handler; a withdrawn request puts its cancel frame on the
    /// wire and its handler is never called; an unanswered one times out
    /// through its handler.
    @Test func aHandlerGetsTheReplyAndAWithdrawnRequestIsCancelledOnTheWire() async throws {
        // Only nonce 1 is answered.
        let (server, task, seen) = try await recordingServer { $0 == 1 }
        let (replies, reply) = AsyncStream.makeStream(of: (nonce: UInt32, result: Result<Frame, any Error>).self)
        let connection = try await FramedConnection.connect(host: "127.0.0.1", port: server.port, role: "peer")
        func send(_ nonce: UInt32, timeout: TimeAmount) -> UInt32 {
            connection.send(timeout: timeout, { id throws(WireError) in try CheckActive(nonce: nonce).frame(requestID: id) }) { result in
                reply.yield((nonce, result))
            }
        }
        var received = replies.makeAsyncIterator()
        var observed = seen.makeAsyncIterator()
        _ = send(1, timeout: .seconds(3600))
        let first = await received.next()
        #expect(first?.nonce == 1)
        #expect(try first.map { try Active(frame: $0.result.get()).nonce } == 1)
        #expect(await observed.next()?.type == .checkActive)

        let withdrawn = send(2, timeout: .seconds(3600))
        let asked = await observed.next()
        #expect(asked?.requestID == withdrawn)
        let cancel = Frame(type: .chunkCancel, requestID: withdrawn, payload: ByteBuffer(bytes: [UInt8](repeating: 0, count: 36)))
        #expect(connection.withdraw(withdrawn, cancel: cancel))
        #expect(!connection.withdraw(withdrawn, cancel: cancel), "withdrawn twice")
        let told = await observed.next()
        #expect(told?.type == .chunkCancel && told?.requestID == withdrawn)

        // The next call of a handler is this timeout: the withdrawn request's handler was never called.
        _ = send(3, timeout: .milliseconds(200))
        let late = await received.next()
        #expect(late?.nonce == 3)
        if case let .failure(error)? = late?.result {
            #expect(error as? NetError == .timedOut(operation: "checkActive", seconds: 0.2))
        } else {
            Issue.record("expected a timeout, got \(String(describing: late?.result))")
        }
        connection.close()
        await connection.closed()
        server.shutdown()
        await task.value
    }

    /// The handshake deadline runs from the accept, on the event loop, and
    /// judges the client only. While the task serving connections is held
    /// back (as behind busy threads): a connection that never says hello is
    /// closed on time; one whose hello arrived in time is answered once the
    /// task gets to it, past the deadline, and kept.
    @Test func theHandshakeDeadlineJudgesTheClientNotTheServingTask() async throws {
        let server = try await FramedServer.bind(host: "127.0.0.1", port: 0, handshakeTimeout: .seconds(1))
        let released = Mutex(false)
        let task = Task {
            await server.run { connection in
                while !released.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(10)) }
                try? await connection.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "peer")
                    while try await iterator.next() != nil {}
                }
            }
        }
        // Raw sockets: the hello leaves with the connect, whatever this process's threads are doing.
        let silent = try RawSocket(port: server.port, timeout: 20)
        let polite = try RawSocket(port: server.port, timeout: 20)
        polite.send(Array(buffer: try Hello(role: "peer", software: "test").frame(requestID: 1).encoded()))
        let (_, closed) = await silent.readUntilClosedAsync()
        #expect(closed, "the silent connection was not closed while its serving task was held back")
        try await Task.sleep(for: .seconds(1))
        released.withLock { $0 = true }
        @Sendable func firstFrame(_ bytes: [UInt8]) -> Frame? {
            var buffer = ByteBuffer(bytes: bytes)
            var decoder = FrameDecoder()
            return try? decoder.decode(buffer: &buffer)
        }
        let (reply, politeClosed) = await polite.readUntilAsync { firstFrame($0) != nil }
        #expect(!politeClosed, "a client whose hello came in time was closed")
        let frame = try #require(firstFrame(reply), "no reply to the hello")
        #expect(frame.type == .helloAck, "the hello was answered with \(frame.type)")
        polite.close()
        silent.close()
        server.shutdown()
        await task.value
    }
}

extension FramedConnectionTests {
    /// A peer on loopback that passes on every frame it gets after the
    /// handshake, and answers each `checkActive` whose nonce `answers` takes.
    private func recordingServer(answering answers: @escaping @Sendable (UInt32) -> Bool) async throws
        -> (FramedServer, Task<Void, Never>, AsyncStream<Frame>) {
        let (seen, saw) = AsyncStream.makeStream(of: Frame.self)
        let server = try await FramedServer.bind(host: "127.0.0.1", port: 0)
        let task = Task {
            await server.run { connection in
                try? await connection.channel.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "peer")
                    while let frame = try await iterator.next() {
                        saw.yield(frame)
                        if frame.type == .checkActive, let probe = try? CheckActive(frame: frame), answers(probe.nonce) {
                            try await outbound.write(.frame(try Active(nonce: probe.nonce).frame(requestID: frame.requestID)))
                        }
                    }
                }
            }
        }
        return (server, task, seen)
    }

    /// Requests and cancels made back to back (they leave in batches, one
    /// hand-over to the event loop and one flush for all made meanwhile)
    /// reach the other side in the order they were made, each cancel behind
    /// its request, and every reply not withdrawn reaches its handler.
    @Test func backToBackRequestsKeepTheirOrder() async throws {
        let (server, task, seen) = try await recordingServer { _ in true }
        let connection = try await FramedConnection.connect(host: "127.0.0.1", port: server.port, role: "peer", pipelined: true)
        let (replies, reply) = AsyncStream.makeStream(of: UInt32.self)
        let count = 300
        var ids: [UInt32] = []
        var withdrawn: Set<UInt32> = []
        for nonce in 0..<UInt32(count) {
            let id = connection.send(timeout: .seconds(3600), { id throws(WireError) in try CheckActive(nonce: nonce).frame(requestID: id) }) { result in
                if let frame = try? result.get(), let active = try? Active(frame: frame) { reply.yield(active.nonce) }
            }
            ids.append(id)
            // Every third is withdrawn at once, before its reply can come.
            if nonce % 3 == 2 {
                let cancel = Frame(type: .chunkCancel, requestID: id, payload: ByteBuffer(bytes: [UInt8](repeating: 0, count: 36)))
                if connection.withdraw(id, cancel: cancel) { withdrawn.insert(id) }
            }
        }
        var observed = seen.makeAsyncIterator()
        var order: [Frame] = []
        while order.count < count + withdrawn.count, let frame = await observed.next() { order.append(frame) }
        #expect(order.filter { $0.type == .checkActive }.map(\.requestID) == ids)
        for id in withdrawn {
            let request = order.firstIndex { $0.type == .checkActive && $0.requestID == id }
            let cancel = order.firstIndex { $0.type == .chunkCancel && $0.requestID == id }
            #expect(request != nil && cancel != nil && request! < cancel!, "the cancel of \(id) follows its request")
        }
        var answered: Set<UInt32> = []
        var iterator = replies.makeAsyncIterator()
        while answered.count < count - withdrawn.count, let nonce = await iterator.next() { answered.insert(nonce) }
        #expect(answered.count == count - withdrawn.count)
        connection.close()
        await connection.closed()
        server.shutdown()
        await task.value
    }
}
