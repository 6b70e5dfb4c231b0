import Foundation

/// Runs blocking work (hashing gigabytes, say) on a thread of its own, so it
/// does not hold one of Swift concurrency's few threads while the other tests
/// of the run need them.
public func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
