@testable import ShoalPeer
import Testing

/// The inbox a download loop takes its events from, in batches.
@Suite("Event inbox", .timeLimit(.minutes(1)))
struct EventInboxTests {
    /// What was posted while nobody looked comes out as one batch, in order;
    /// a consumer that waits gets the next event as soon as it is posted.
    @Test func postsComeOutInBatchesInOrder() async {
        let inbox = EventInbox<Int>()
        for event in 1...5 { #expect(inbox.post(event)) }
        #expect(await inbox.next() == [1, 2, 3, 4, 5])
        let waiting = Task { await inbox.next() }
        // The consumer may or may not be waiting yet: either way 6 is its batch.
        #expect(inbox.post(6))
        #expect(await waiting.value == [6])
    }

    /// Finishing wakes a waiting consumer with an empty batch, refuses later
    /// posts (their poster keeps what they carry), and leaves what was
    /// already posted to be taken first.
    @Test func finishRefusesLaterPosts() async {
        let inbox = EventInbox<Int>()
        let waiting = Task { await inbox.next() }
        try? await Task.sleep(for: .milliseconds(20))
        inbox.finish()
        #expect(await waiting.value == [])
        #expect(!inbox.post(1))
        #expect(await inbox.next() == [])

        let other = EventInbox<Int>()
        other.post(7)
        other.finish()
        #expect(await other.next() == [7])
        #expect(await other.next() == [])

        // A consumer that stops takes what is left without waiting.
        let stopping = EventInbox<Int>()
        stopping.post(8)
        stopping.post(9)
        stopping.finish()
        #expect(stopping.takeRemaining() == [8, 9])
        #expect(stopping.takeRemaining() == [])
        #expect(await stopping.next() == [])
    }

    /// Cancelling the consumer's task ends its wait with an empty batch and
    /// finishes the inbox, as the end of an `AsyncStream` did.
    @Test func cancellingTheConsumerFinishes() async {
        let inbox = EventInbox<Int>()
        let waiting = Task { await inbox.next() }
        try? await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        #expect(await waiting.value == [])
        #expect(!inbox.post(1))
        // Cancelled before it even looked: the same.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await EventInbox<Int>().next()
        }
        #expect(await early.value == [])
    }
}
