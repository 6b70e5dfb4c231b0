#if canImport(Glibc)
import Glibc
#endif

/// Lowers the priority of the thread it runs on, so that slow background
/// work (password hashing: about 0.1 s of CPU per login) takes only what
/// the tracker's request threads leave. A thousand logins at once then
/// queue behind each other, not in front of everyone's `list` and
/// `details`. Linux only (elsewhere it does nothing): there each thread has
/// a nice value of its own.
enum BackgroundPriority {
    /// The nice value hashing threads run at (0 is normal, 19 the lowest).
    static let niceness: Int32 = 10

    /// Sets the calling thread's nice value to ``niceness``. One system call:
    /// cheap next to the work it is called for.
    static func lowerCurrentThread() {
        #if os(Linux)
        // On Linux the nice value belongs to the thread, and `who` 0 is the calling thread.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #endif
    }
}
