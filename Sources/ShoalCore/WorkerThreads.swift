#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs `count` workers on threads of their own and waits for them all.
///
/// For CPU-bound batches (hashing a file, compressing its chunks). Unlike
/// `DispatchQueue.concurrentPerform`, it takes no thread from Dispatch's
/// shared pool, on which Swift concurrency runs under Linux: hashing
/// gigabytes must not stall the network code of the same process.
public enum WorkerThreads {
    public static func run(count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard count > 1 else {
            body(0)
            return
        }
        final class Job {
            let body: @Sendable (Int) -> Void
            let index: Int
            init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) {
                self.body = body
                self.index = index
            }
        }
        var threads: [pthread_t] = []
        for index in 1..<count {
            let job = Unmanaged.passRetained(Job(body, index)).toOpaque()
            var thread = pthread_t()
            let created = pthread_create(&thread, nil, { argument in
                let job = Unmanaged<Job>.fromOpaque(argument!).takeRetainedValue()
                job.body(job.index)
                return nil
            }, job)
            if created == 0 {
                threads.append(thread)
            } else {
                // No thread: do that share here.
                let job = Unmanaged<Job>.fromOpaque(job).takeRetainedValue()
                job.body(job.index)
            }
        }
        body(0)
        for thread in threads { pthread_join(thread, nil) }
    }
}
