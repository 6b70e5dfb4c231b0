import NIOCore
import NIOEmbedded
import ShoalNet
import ShoalWire
import Testing

/// The liveness probes as a state machine on an embedded channel, whose
/// clock only moves when the test moves it.
@Suite("Liveness probes")
struct LivenessHandlerTests {
    /// An active channel with a `LivenessHandler` (30 s quiet, 10 s to answer), watching.
    func watched(answered: (@Sendable (MessageType) -> Bool)?) throws -> (EmbeddedChannel, EmbeddedEventLoop, LivenessHandler) {
        let loop = EmbeddedEventLoop()
        let handler = LivenessHandler(probeAfter: .seconds(30), timeout: .seconds(10), answered: answered)
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        handler.activate(on: loop)
        loop.run()
        return (channel, loop, handler)
    }

    func request(_ type: MessageType, id: UInt32) -> Frame {
        Frame(type: type, requestID: id, payload: ByteBuffer(string: "{}"))
    }

    /// The types of `OutgoingFrame` written so far.
    func written(_ channel: EmbeddedChannel) throws -> [MessageType] {
        var types: [MessageType] = []
        while let frame = try channel.readOutbound(as: OutgoingFrame.self) { types.append(frame.type) }
        return types
    }

    /// A peer waiting for the server's answer is not probed, however long the
    /// server takes; once the answer is out, its silence counts again.
    @Test func aPeerWaitingOnTheServerIsNotProbed() throws {
        let (channel, loop, handler) = try watched(answered: { $0 != .active })
        try channel.writeInbound(request(.register, id: 1))
        _ = try channel.readInbound(as: Frame.self)
        loop.advanceTime(by: .seconds(120))
        #expect(try written(channel).isEmpty, "probed while the server owed the answer")
        #expect(channel.isActive)
        try channel.writeOutbound(OutgoingFrame.frame(request(.registered, id: 1)))
        #expect(try written(channel) == [.registered])
        loop.advanceTime(by: .seconds(29))
        #expect(try written(channel).isEmpty, "quiet time counts from the answer")
        loop.advanceTime(by: .seconds(2))
        #expect(try written(channel) == [.checkActive])
        loop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive && handler.dropped, "a silent peer is dropped once it owes the answer")
    }

    /// An answer to a probe is no request: a peer that answers and then falls
    /// silent is probed again and dropped.
    @Test func anAnswerToAProbeIsNoRequest() throws {
        let (channel, loop, handler) = try watched(answered: { $0 != .active })
        loop.advanceTime(by: .seconds(31))
        #expect(try written(channel) == [.checkActive])
        try channel.writeInbound(request(.active, id: .max))
        _ = try channel.readInbound(as: Frame.self)
        loop.advanceTime(by: .seconds(31))
        #expect(try written(channel) == [.checkActive])
        loop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive && handler.dropped)
    }

    /// A request never answered holds the probes back for ``LivenessHandler/longestWait`` at most.
    @Test func anUnansweredRequestHoldsProbesBackForALimitedTime() throws {
        let (channel, loop, _) = try watched(answered: { $0 != .active })
        try channel.writeInbound(request(.announce, id: 2))
        _ = try channel.readInbound(as: Frame.self)
        loop.advanceTime(by: LivenessHandler.longestWait - .seconds(31))
        #expect(try written(channel).isEmpty)
        loop.advanceTime(by: .seconds(62))
        #expect(try written(channel) == [.checkActive])
    }

    /// Without the promise to answer (a peer's server: a `chunkCancel` gets no
    /// answer), quiet is quiet, whatever came in last.
    @Test func withoutThePromiseQuietIsQuiet() throws {
        let (channel, loop, handler) = try watched(answered: nil)
        try channel.writeInbound(request(.chunkRequest, id: 3))
        _ = try channel.readInbound(as: Frame.self)
        loop.advanceTime(by: .seconds(31))
        #expect(try written(channel) == [.checkActive])
        loop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive && handler.dropped)
    }
}
