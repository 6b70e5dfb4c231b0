import Synchronization

/// What a ``FrameDecoder`` allocated to assemble payloads and what it
/// skipped unread: a connection's owner reads them (and tests check with
/// them that an unsolicited frame costs no memory). Shared by reference, as
/// the decoder lives in a channel pipeline.
public final class FrameStatistics: Sendable {
    private let allocated = Atomic<Int>(0)
    private let droppedFrames = Atomic<Int>(0)
    private let droppedBytes = Atomic<Int>(0)

    public init() {}

    /// Bytes allocated, over the connection's life, for payloads assembled
    /// over several reads (frames that fit in one read cost nothing more).
    public var allocatedBytes: Int { allocated.load(ordering: .relaxed) }
    /// Frames skipped because nobody awaited them, and their bytes.
    public var dropped: (frames: Int, bytes: Int) {
        (droppedFrames.load(ordering: .relaxed), droppedBytes.load(ordering: .relaxed))
    }

    func add(allocated bytes: Int) {
        allocated.add(bytes, ordering: .relaxed)
    }

    func add(droppedFrame bytes: Int) {
        droppedFrames.add(1, ordering: .relaxed)
        droppedBytes.add(bytes, ordering: .relaxed)
    }
}
