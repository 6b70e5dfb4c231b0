#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// With `SHOAL_EXIT_WITH_PARENT=1` in the environment, a `shoal` process ends
/// when whatever started it is gone (a test run, a supervisor): it sends
/// itself SIGTERM, so a tracker or a seeder shuts down as it would on Ctrl-C.
///
/// It watches `getppid()`, which changes when the parent process dies.
/// `prctl(PR_SET_PDEATHSIG)` is no substitute: it fires when the parent's
/// *thread* that started the child exits, and a test runner retires idle
/// threads at will, killing trackers in the middle of a test.
enum ParentWatch {
    static func startIfAsked() {
        guard ProcessInfo.processInfo.environment["SHOAL_EXIT_WITH_PARENT"] == "1" else { return }
        let parent = getppid()
        let watcher = Thread {
            while getppid() == parent { usleep(200_000) }
            kill(getpid(), SIGTERM)
        }
        watcher.name = "shoal-parent-watch"
        watcher.start()
    }
}
