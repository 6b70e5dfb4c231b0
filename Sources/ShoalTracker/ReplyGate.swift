import NIOCore
import ShoalWire
import Synchronization

/// Holds a tracker connection's next request until its earlier replies have
/// drained. A client that sends requests and never reads the replies would
/// otherwise make the tracker build reply after reply for it; with the gate,
/// such a connection costs at most the replies already handed to its socket
/// (the channel's write buffer high-water mark plus one reply), however many
/// requests it sends.
///
/// It also stops reading from a connection that cannot take its replies (as
/// NIO's `BackPressureHandler` does), so the requests it keeps sending wait
/// in the kernel's buffers, not in the tracker's.
final class ReplyGate: ChannelDuplexHandler, Sendable {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private struct State {
        var writable = true
        var closed = false
        var readHeld = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        let (waiters, readAgain) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Bool) in
            state.writable = writable
            guard writable else { return ([], false) }
            defer {
                state.waiters = []
                state.readHeld = false
            }
            return (state.waiters, state.readHeld)
        }
        for waiter in waiters { waiter.resume() }
        if readAgain { context.read() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        let hold = state.withLock { state -> Bool in
            if state.writable { return false }
            state.readHeld = true
            return true
        }
        if !hold { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.closed = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
        context.fireChannelInactive()
    }

    /// Returns once the connection can take more bytes (or has closed).
    func waitUntilWritable() async {
        // Nearly always: no continuation to make.
        if state.withLock({ $0.writable || $0.closed }) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.writable || state.closed { return true }
                state.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
