import Foundation
import ShoalTestSupport
import ShoalTracker
import Testing

/// `shoal tracker --http` as a real process.
@Suite struct OperatorCommandTests {
    /// A bare port listens on 127.0.0.1 only and is announced on stdout's
    /// third line; the view answers with the token the tracker wrote and
    /// refuses without it; SIGTERM stops both servers, exit 0.
    @Test func trackerServesTheViewOnLoopback() async throws {
        let folder = try TemporaryDirectory("shoal-operator-cli")
        defer { folder.remove() }
        let database = folder.file("tracker.sqlite")
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", database, "--password-rounds", "1000", "--http", "0"])
        let line = try #require(try await tracker.waitForLine { $0.hasPrefix("operator view on") }, "stdout: \(tracker.lines), stderr: \(tracker.errors)")
        #expect(line.hasPrefix("operator view on http://127.0.0.1:") && line.hasSuffix("/"))
        let port = try #require(Int(line.dropFirst("operator view on http://127.0.0.1:".count).dropLast()))
        let token = try OperatorToken.read(from: database + "-operator-token")

        let metrics = try await HTTPExchange.send("GET", "/metrics", port: port, headers: ["Authorization": "Bearer \(token)"])
        #expect(metrics.status == 200 && metrics.text.contains("shoal_tracker_connected_peers 0"))
        let refused = try await HTTPExchange.send("GET", "/metrics", port: port)
        #expect(refused.status == 401)
        #expect(try await tracker.stop() == 0, "stderr: \(tracker.errors)")
        #expect((try? RawSocket(port: port, timeout: 1)) == nil, "the view still listens after the tracker stopped")
    }

    /// A malformed --http is refused before anything starts, saying what to give.
    @Test func badAddressIsRefused() async throws {
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", "/nonexistent/tracker.sqlite", "--http", "localhost:http"])
        #expect(try await tracker.waitForExit() != 0)
        #expect(tracker.errors.contains("--http") && tracker.errors.contains("HOST:PORT"), "stderr: \(tracker.errors)")
    }
}
