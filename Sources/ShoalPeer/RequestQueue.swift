import Synchronization
import ShoalWire

/// The requests a peer connection has read and not answered yet, between
/// the task that reads them and the one that serves them.
///
/// Reading ahead is what lets a `chunkCancel` take effect: the reader sees it
/// while the chunk it cancels still waits here, and removes that request, so
/// its bytes never go out. The queue holds at most `limit` frames; past that
/// the reader waits, and TCP pushes back on the downloader.
final class RequestQueue: Sendable {
    private struct State: ~Copyable {
        var frames: [Frame] = []
        var head = 0
        var finished = false
        /// Draining: frames pushed from now on are dropped unanswered.
        var draining = false
        var consumer: CheckedContinuation<Frame?, Never>?
        var producer: CheckedContinuation<Void, Never>?
        var count: Int { frames.count - head }
    }

    private let state = Mutex(State())
    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// Adds a frame; waits while the queue is full. Once draining, the frame is dropped.
    func push(_ frame: Frame) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiting: CheckedContinuation<Frame?, Never>? = state.withLock { state in
                if state.draining {
                    continuation.resume()
                    return nil
                }
                if let consumer = state.consumer {
                    state.consumer = nil
                    continuation.resume()
                    return consumer
                }
                state.frames.append(frame)
                if state.count < limit || state.finished {
                    continuation.resume()
                } else {
                    state.producer = continuation
                }
                return nil
            }
            waiting?.resume(returning: frame)
        }
    }

    /// Removes the queued `chunkRequest` with `requestID`; whether it was still queued.
    @discardableResult
    func cancel(requestID: UInt32) -> Bool {
        let (found, producer) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard let index = state.frames[state.head...].firstIndex(where: { $0.type == .chunkRequest && $0.requestID == requestID }) else {
                return (false, nil)
            }
            state.frames.remove(at: index)
            let producer = state.count < limit ? state.producer : nil
            if producer != nil { state.producer = nil }
            return (true, producer)
        }
        producer?.resume()
        return found
    }

    /// The next frame, waiting for one; nil once finished and drained.
    func next() async -> Frame? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Frame?, Never>) in
            let producer: CheckedContinuation<Void, Never>? = state.withLock { state in
                guard state.head < state.frames.count else {
                    if state.finished {
                        continuation.resume(returning: nil)
                    } else {
                        state.consumer = continuation
                    }
                    return nil
                }
                let frame = state.frames[state.head]
                state.head += 1
                if state.head > 64 && state.head * 2 > state.frames.count {
                    state.frames.removeFirst(state.head)
                    state.head = 0
                }
                continuation.resume(returning: frame)
                let producer = state.count < limit ? state.producer : nil
                if producer != nil { state.producer = nil }
                return producer
            }
            producer?.resume()
        }
    }

    /// The next frame if one is queued already; nil otherwise (without waiting).
    func nextQueued() -> Frame? {
        let (frame, producer): (Frame?, CheckedContinuation<Void, Never>?) = state.withLock { state in
            guard state.head < state.frames.count else { return (nil, nil) }
            let frame = state.frames[state.head]
            state.head += 1
            if state.head > 64 && state.head * 2 > state.frames.count {
                state.frames.removeFirst(state.head)
                state.head = 0
            }
            let producer = state.count < limit ? state.producer : nil
            if producer != nil { state.producer = nil }
            return (frame, producer)
        }
        producer?.resume()
        return frame
    }

    /// No more frames will come: the consumer drains what is queued, then gets nil.
    func finish() {
        finish(draining: false)
    }

    /// The server is draining: what is queued is still answered, frames
    /// read from now on are dropped, and the consumer then gets nil.
    func drain() {
        finish(draining: true)
    }

    /// Whether ``drain()`` was called.
    var isDraining: Bool { state.withLock { $0.draining } }

    private func finish(draining: Bool) {
        let (consumer, producer) = state.withLock { state in
            state.finished = true
            if draining { state.draining = true }
            defer { state.consumer = nil; state.producer = nil }
            return (state.consumer, state.producer)
        }
        consumer?.resume(returning: nil)
        producer?.resume()
    }
}
