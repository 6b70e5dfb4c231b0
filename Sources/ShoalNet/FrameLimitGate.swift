import NIOCore
import ShoalWire
import Synchronization

/// A per-connection switch between a small and a large frame limit, e.g.
/// large announces only once a session is open. It sits in the pipeline
/// (passing every frame through) so the code serving the connection can find
/// it with `channel.pipeline.handler(type:)` and open it.
public final class FrameLimitGate: ChannelInboundHandler, Sendable {
    public typealias InboundIn = Frame
    public typealias InboundOut = Frame

    private let opened = Atomic<Bool>(false)
    public init() {}

    /// Whether the large limit applies.
    public var isOpen: Bool { opened.load(ordering: .relaxed) }
    public func open() { opened.store(true, ordering: .relaxed) }
    public func close() { opened.store(false, ordering: .relaxed) }
}
