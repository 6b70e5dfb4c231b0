import Synchronization

/// Events for one consumer task from any number of producers, taken in
/// batches: the consumer gets everything posted since it last looked, so it
/// can act once on the lot. A ``DownloadLoop`` handles every chunk that came
/// meanwhile, then makes its requests once, and they leave together (one
/// hand-over to each connection's event loop, one `write`), where an
/// `AsyncStream` would hand it one event at a time and have it ask after each.
final class EventInbox<Event: Sendable>: Sendable {
    private struct State: ~Copyable {
        var queued: [Event] = []
        /// The consumer, while it waits for the first event of a batch.
        var consumer: CheckedContinuation<[Event], Never>?
        var finished = false
    }

    private let state = Mutex(State())

    init() {}

    /// Adds `event` for the consumer; false if the inbox is finished (the
    /// event is dropped, and whatever it holds is the poster's to release).
    @discardableResult
    func post(_ event: Event) -> Bool {
        let (accepted, consumer) = state.withLock { state -> (Bool, CheckedContinuation<[Event], Never>?) in
            guard !state.finished else { return (false, nil) }
            if let consumer = state.consumer {
                state.consumer = nil
                return (true, consumer)
            }
            state.queued.append(event)
            return (true, nil)
        }
        consumer?.resume(returning: [event])
        return accepted
    }

    /// Every event posted and not taken yet, in the order posted, waiting
    /// for one if there is none; empty once the inbox is finished and
    /// drained, or the calling task is cancelled (which finishes it).
    func next() async -> [Event] {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[Event], Never>) in
                let ready: [Event]? = state.withLock { state in
                    if !state.queued.isEmpty {
                        defer { state.queued = [] }
                        return state.queued
                    }
                    if state.finished { return [] }
                    state.consumer = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            finish()
        }
    }

    /// The events posted and not taken yet, taken now without waiting (by
    /// a consumer that stops: what they hold, an open connection, is its
    /// to release).
    func takeRemaining() -> [Event] {
        state.withLock { state in
            defer { state.queued = [] }
            return state.queued
        }
    }

    /// No more events: later posts are refused, and a waiting consumer gets an empty batch.
    func finish() {
        let consumer = state.withLock { state -> CheckedContinuation<[Event], Never>? in
            state.finished = true
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume(returning: [])
    }
}
