import NIOCore
@testable import ShoalPeer
import ShoalWire
import Testing

/// The queue between a peer connection's reader and its answering task.
@Suite("Request queue", .timeLimit(.minutes(1)))
struct RequestQueueTests {
    func request(_ id: UInt32) -> Frame {
        Frame(type: .chunkRequest, requestID: id, payload: ByteBuffer())
    }

    /// Frames come out in order; a cancelled request never comes out; finish drains, then ends.
    @Test func orderCancelAndFinish() async {
        let queue = RequestQueue(limit: 8)
        for id in 1...5 { await queue.push(request(UInt32(id))) }
        #expect(queue.cancel(requestID: 3))
        #expect(!queue.cancel(requestID: 3), "already gone")
        #expect(!queue.cancel(requestID: 42), "never queued")
        #expect(await queue.next()?.requestID == 1)
        queue.finish()
        var rest: [UInt32] = []
        while let frame = await queue.next() { rest.append(frame.requestID) }
        #expect(rest == [2, 4, 5])
    }

    /// Draining (a server stopping on SIGTERM): what is queued still comes
    /// out, frames pushed after are dropped, a producer waiting on a full
    /// queue is let go, and the consumer then gets nil.
    @Test func drainAnswersWhatIsQueued() async {
        // The fourth frame fills the queue: its push waits.
        let queue = RequestQueue(limit: 4)
        for id in 1...3 { await queue.push(request(UInt32(id))) }
        let blocked = Task { await queue.push(request(4)) }
        #expect(!queue.isDraining)
        queue.drain()
        await blocked.value
        await queue.push(request(5))
        #expect(queue.isDraining)
        var out: [UInt32] = []
        while let frame = await queue.next() { out.append(frame.requestID) }
        #expect(out == [1, 2, 3, 4] || out == [1, 2, 3], "queued frames come out, later ones do not: \(out)")
        #expect(!out.contains(5))
    }

    /// A full queue holds its producer until the consumer takes a frame, or a cancel makes room.
    @Test func fullQueueWaits() async throws {
        let queue = RequestQueue(limit: 2)
        await queue.push(request(1))
        let pushed = ManagedCount()
        let producer = Task {
            for id in 2...3 {
                await queue.push(request(UInt32(id)))
                pushed.set(id)
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(pushed.value == 0, "the second frame filled the queue: its push waits")
        #expect(queue.cancel(requestID: 1), "the cancel frees a slot")
        try await Task.sleep(for: .milliseconds(100))
        #expect(pushed.value == 2, "then the third push waits in turn")
        #expect(await queue.next()?.requestID == 2)
        await producer.value
        #expect(pushed.value == 3)
        #expect(await queue.next()?.requestID == 3)
        // A consumer waiting on an empty queue gets the next frame pushed.
        let waiting = Task { await queue.next()?.requestID }
        try await Task.sleep(for: .milliseconds(50))
        await queue.push(request(4))
        #expect(await waiting.value == 4)
    }
}
