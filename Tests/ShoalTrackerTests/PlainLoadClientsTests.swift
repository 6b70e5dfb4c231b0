import Foundation
import ShoalTestSupport
import Testing

/// `shoal-bench tracker --rate` as a real process against a real `shoal
/// tracker`, with its NIO clients and with `--plain-sockets` (whose clients
/// log in again): each announces and plays paced rounds, and every reply is
/// checked by type and request id (any other answer ends the run with an
/// error), so a run that exits 0 with every request counted has been
/// answered in full.
@Suite("shoal-bench tracker, paced", .timeLimit(.minutes(3)))
struct PlainLoadClientsTests {
    @Test(arguments: [false, true])
    func aPacedRunIsAnsweredInFull(plainSockets: Bool) async throws {
        let bench = URL(fileURLWithPath: ShoalProcess.binary).deletingLastPathComponent().appendingPathComponent("shoal-bench").path
        try #require(FileManager.default.isExecutableFile(atPath: bench), "shoal-bench is built beside shoal: \(bench)")
        // Runs `shoal-bench tracker --shoal <shoal> <options>`.
        let run = try ShoalProcess(["--clients", "40", "--rounds", "5", "--login-samples", "0", "--storm-clients", "0",
                                    "--password-rounds", "1000", "--insecure", "--rate", "2000"] + (plainSockets ? ["--plain-sockets"] : []),
                                   launcher: [bench, "tracker", "--shoal"])
        #expect(try await run.waitForExit(timeout: 110) == 0, "stderr: \(run.errors)")
        let lines = run.lines
        func count(_ request: String) -> Int? {
            lines.first { $0.hasPrefix(request + " ") }.flatMap { Int($0.split(separator: " ")[1]) }
        }
        #expect(count("announce") == 40, "\(lines)")
        #expect(count("list") == 200, "\(lines)")
        #expect(count("details") == 200, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("phase 2 clients: plain sockets") } == plainSockets, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("phase 2 errors: 0;") }, "\(lines)")
    }

    @Test
    func plainSocketsNeedAPacedRunInClear() async throws {
        let bench = URL(fileURLWithPath: ShoalProcess.binary).deletingLastPathComponent().appendingPathComponent("shoal-bench").path
        try #require(FileManager.default.isExecutableFile(atPath: bench), "shoal-bench is built beside shoal: \(bench)")
        let run = try ShoalProcess(["--clients", "4", "--plain-sockets"], launcher: [bench, "tracker", "--shoal"])
        #expect(try await run.waitForExit(timeout: 30) != 0)
        #expect(run.errors.contains("--plain-sockets runs a paced phase 2 in clear"), "stderr: \(run.errors)")
    }
}
