import Synchronization

/// A continuation kept to be resumed once, by whichever of several racing
/// events comes first (the work finishing, a timeout, the waiting task's
/// cancellation); later attempts do nothing.
final class ResumedOnce<Value: Sendable, Failure: Error>: Sendable {
    private let continuation = Mutex<CheckedContinuation<Value, Failure>?>(nil)

    func keep(_ waiting: CheckedContinuation<Value, Failure>) {
        continuation.withLock { $0 = waiting }
    }

    func resume(with result: Result<Value, Failure>) {
        continuation.withLock { $0.take() }?.resume(with: result)
    }
}
