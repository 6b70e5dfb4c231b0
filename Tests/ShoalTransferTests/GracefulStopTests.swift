import Foundation
import ShoalCore
import ShoalTestSupport
import Testing

/// SIGTERM to `shoal seed` and `shoal get` in the middle of a download: each
/// stops cleanly within its drain deadline, and nothing is lost. (Part of the
/// transfer suite, so they run one at a time with the other transfers.)
extension TransferTests {
    /// The time from `signal` to the process's exit, with its exit status.
    static func stop(_ process: ShoalProcess, signal: Int32 = SIGTERM, timeout: Double = 60) async throws -> (status: Int32?, seconds: Double) {
        let sent = Date()
        let status = try await process.stop(signal: signal, timeout: timeout)
        return (status, Date().timeIntervalSince(sent))
    }

    /// A seeder SIGTERMed while it serves a download, of three: it logs out,
    /// finishes the chunks asked for and exits 0 within its deadline; the
    /// download finishes byte-identical from the others, with no failure
    /// reported about the seeder that left.
    @Test func seederStoppedWithSIGTERMDrains() async throws {
        let bytes = TestData.random(96 << 20, seed: 17)
        let sha = ChunkDigest(hashing: bytes).hex
        // Capped seeders, so that the download is still running when the first
        // one leaves: about 7 s, since on a busy machine the polling below may
        // not run for a second or two.
        let swarm = try await swarm("drain.bin", bytes, seeders: 3, seederOptions: ["--max-upload", "5MB/s", "--drain-seconds", "10"])
        try await swarm.register("d")
        let get = try swarm.get("drain.bin", user: "d", extra: ["--log-level", "notice"])
        #expect(try await swarm.waitForProgress(of: "d", atLeast: 0.15))
        let leaving = try #require(swarm.seeder("seeder1"))
        let (status, seconds) = try await Self.stop(leaving)
        print("seeder1: SIGTERM to exit \(String(format: "%.2f", seconds)) s (deadline 10 s)")
        #expect(status == 0, "\(leaving.errors)")
        #expect(seconds < 10 + 5, "it should stop by its deadline (and the library's cancellation grace)")
        #expect(leaving.errors.contains("leaving: logging out of the tracker"), "\(leaving.errors)")
        // It was serving d: that connection finished its requests by itself, none was cut at the deadline.
        #expect(leaving.errors.contains("draining: accepting no new connections; 1 connection"), "\(leaving.errors)")
        #expect(!leaving.errors.contains("stopping now: closing"), "\(leaving.errors)")
        #expect(swarm.tracker.errors.contains("logout: seeder1"), "\(swarm.tracker.errors.suffix(2000))")
        #expect(swarm.progress(of: "d") < 1, "the download should still have been running")

        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        expectIntact(swarm, user: "d", name: "drain.bin", sha: sha)
        #expect(!swarm.tracker.errors.contains("says seeder1 failed"), "leaving is no failure: \(swarm.tracker.errors.suffix(2000))")
        await swarm.stop()
    }

    /// `shoal get` SIGTERMed mid-download exits 75 with its verified chunks
    /// on disk, and nothing under the final name; run again, it resumes and
    /// finishes byte-identical.
    @Test func downloaderStoppedWithSIGTERMResumes() async throws {
        let bytes = TestData.random(96 << 20, seed: 18)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("s.bin", bytes, seeders: 2)
        try await swarm.register("d")
        // Capped, so that the download is still running when the signal comes (about 7 s).
        let first = try swarm.get("s.bin", user: "d", extra: ["--max-download", "15MB/s"])
        #expect(try await swarm.waitForProgress(of: "d", atLeast: 0.3))
        let (status, seconds) = try await Self.stop(first)
        print("shoal get: SIGTERM to exit \(String(format: "%.2f", seconds)) s (deadline 10 s)")
        #expect(status == 75, "\(first.errors)")
        #expect(first.errors.contains("run the same command again to resume"), "\(first.errors)")
        #expect(swarm.tracker.errors.contains("logout: d"), "\(swarm.tracker.errors.suffix(2000))")
        let kept = swarm.progress(of: "d")
        #expect(kept >= 0.3 && kept < 1, "kept \(kept)")
        let folder = swarm.root.file("d")
        #expect(!FileManager.default.fileExists(atPath: folder + "/s.bin"), "a partial file under the final name")
        let partial = try FileManager.default.contentsOfDirectory(atPath: folder + "/.shoal/partial")
        #expect(partial.contains { $0.hasSuffix(".part") } && partial.contains { $0.hasSuffix(".have") }, "\(partial)")

        let second = try swarm.get("s.bin", user: "d")
        #expect(try await second.waitForExit(timeout: 120) == 0, "\(second.errors)")
        let result = try #require(ProcessSwarm.result(second))
        let resumed = result["resumedChunks"] as? Int ?? 0
        let fetched = result["fetchedChunks"] as? Int ?? 0
        #expect(resumed >= Int(kept * 384) && resumed + fetched == 384, "kept \(kept), resumed \(resumed), fetched \(fetched)")
        expectIntact(swarm, user: "d", name: "s.bin", sha: sha)
        await swarm.stop()
    }
}
