#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShoalLab
import Testing

/// The lab itself: hosts that reach each other, links that go down, names
/// that do not collide, nothing left behind. These need root and iproute2;
/// without them they fail with the lab's message, never skip.
@Suite("Network lab", .serialized, .timeLimit(.minutes(2)))
struct NetworkLabTests {
    func namespaces() throws -> [String] {
        try LabCommand.run(["ip", "netns", "list"]).split(whereSeparator: \.isNewline).map { String($0.split(separator: " ")[0]) }
    }

    /// Hosts get 198.18.0.N, reach each other over the bridge, and a downed link cuts one off.
    @Test func hostsReachEachOtherUntilALinkGoesDown() throws {
        let lab = try NetworkLab(hosts: ["a", "b", "c"])
        defer { lab.teardown() }
        #expect(try lab.address(of: "a") == "198.18.0.1")
        #expect(try lab.address(of: "c") == "198.18.0.3")
        // A TCP connection with bash's /dev/tcp: "refused" means the host answered.
        // An unreachable one hangs in connect until the 3 s deadline kills it.
        func reaches(_ from: String, _ to: String) throws -> Bool {
            let command = try lab.prefix(for: from) + ["bash", "-c", "exec 3<>/dev/tcp/\(try lab.address(of: to))/9; echo open"]
            do {
                let result = try LabCommand.runAllowingFailure(command, timeout: 3)
                return result.stdout.contains("open") || result.stderr.contains("refused")
            } catch LabError.timedOut {
                return false
            }
        }
        #expect(try reaches("c", "b"))
        #expect(try reaches("a", "c"))
        try lab.setLink("b", up: false)
        #expect(try !reaches("c", "b"), "b still answers with its link down")
        try lab.setLink("b", up: true)
        #expect(try reaches("c", "b"), "b does not answer once its link is back up")
    }

    /// Two labs at once get different namespaces; teardown removes them and every process in them.
    @Test func labsAreSeparateAndTornDown() throws {
        let first = try NetworkLab(hosts: ["x"])
        defer { first.teardown() }
        let second = try NetworkLab(hosts: ["x"])
        defer { second.teardown() }
        #expect(first.hosts[0].namespace != second.hosts[0].namespace)
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: try first.prefix(for: "x")[0])
        sleeper.arguments = Array(try first.prefix(for: "x").dropFirst()) + ["sleep", "60"]
        try sleeper.run()
        let mine = [first.switchNamespace] + first.hosts.map(\.namespace)
        #expect(Set(mine).isSubset(of: try namespaces()))
        first.teardown()
        let deadline = Date().addingTimeInterval(5)
        while sleeper.isRunning && Date() < deadline { usleep(10_000) }
        #expect(!sleeper.isRunning, "a process in the lab outlived its teardown")
        #expect(Set(mine).isDisjoint(with: try namespaces()), "namespaces left behind")
        #expect(second.hosts.map(\.namespace).allSatisfy { (try? namespaces().contains($0)) == true })
    }

    /// A namespace left by a lab whose process died is swept away by the next lab.
    @Test func staleNamespacesAreSwept() throws {
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = "shoal-\(dead.processIdentifier)-1-left"
        try LabCommand.run(["ip", "netns", "add", stale])
        defer { _ = try? LabCommand.runAllowingFailure(["ip", "netns", "del", stale]) }
        let lab = try NetworkLab(hosts: ["y"])
        defer { lab.teardown() }
        #expect(try !namespaces().contains(stale), "the namespace of a dead lab is still there")
    }
}
