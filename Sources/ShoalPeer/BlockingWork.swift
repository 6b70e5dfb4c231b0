import NIOPosix

/// Runs blocking work (hashing files, verifying a resumed download) on NIO's
/// shared thread pool instead of a Swift-concurrency thread: there are only
/// as many of those as cores, and a peer must keep answering its network
/// (chunk requests, the tracker's CheckActive) while it hashes gigabytes.
enum BlockingWork {
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }
}
