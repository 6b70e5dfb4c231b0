import Foundation
import ShoalCore
import ShoalTestSupport
import Testing

/// `--max-upload` and `--max-download` between `shoal` processes on loopback.
/// Each test checks a lower bound only (a limited transfer never goes faster
/// than its limit), which load on the machine cannot break; how close to the
/// limit it comes is measured by `shoal-bench e2e --max-download`.
@Suite("Rate limits between processes", .serialized, .timeLimit(.minutes(2)))
struct RateLimitTests {
    static let size = 3 << 20
    static let rate = 1_000_000.0

    /// A swarm whose seeders share one file, each started with `seederOptions`.
    func swarm(_ bytes: [UInt8], seeders: Int, seederOptions: [String] = []) async throws -> ProcessSwarm {
        let swarm = try await ProcessSwarm()
        for i in 1...seeders {
            _ = try swarm.folder("seeder\(i)", files: ["r.bin": bytes])
            try await swarm.seed("seeder\(i)", extra: seederOptions)
        }
        try await swarm.register("d")
        return swarm
    }

    /// Downloads `r.bin` as `d` with `options`; returns the download's seconds after checking the copy.
    func download(_ swarm: ProcessSwarm, _ bytes: [UInt8], options: [String] = []) async throws -> Double {
        let get = try swarm.get("r.bin", user: "d", extra: options)
        #expect(try await get.waitForExit(timeout: 60) == 0, "\(get.errors)")
        let result = try #require(ProcessSwarm.result(get))
        #expect(fileSHA256(swarm.root.file("d") + "/r.bin") == ChunkDigest(hashing: bytes).hex, "the copy differs from the original")
        return try #require(result["seconds"] as? Double)
    }

    /// A seeder with `--max-upload 1MB/s` serves 3 MiB in no less than 0.9 × 3.1 s.
    @Test func uploadLimit() async throws {
        let bytes = TestData.random(Self.size, seed: 21)
        let swarm = try await swarm(bytes, seeders: 1, seederOptions: ["--max-upload", "1MB/s"])
        let seconds = try await download(swarm, bytes)
        #expect(seconds >= Double(Self.size) / Self.rate * 0.9, "3 MiB in \(seconds) s at 1 MB/s")
        await swarm.stop()
    }

    /// `get --max-download 8Mbit/s` from two unlimited seeders: one budget over
    /// both connections, so 3 MiB take no less than 0.9 × 3.1 s.
    @Test func downloadLimitSharedByHolders() async throws {
        let bytes = TestData.random(Self.size, seed: 22)
        let swarm = try await swarm(bytes, seeders: 2)
        let seconds = try await download(swarm, bytes, options: ["--max-download", "8Mbit/s"])
        #expect(seconds >= Double(Self.size) / Self.rate * 0.9, "3 MiB in \(seconds) s at 1 MB/s")
        await swarm.stop()
    }

    /// A rate that is not one is refused before anything starts, saying what to write.
    @Test func badRateRefused() async throws {
        let swarm = try await ProcessSwarm()
        let get = try swarm.get("r.bin", user: "d", extra: ["--max-download", "20 MB/s"])
        #expect(try await get.waitForExit(timeout: 30) != 0)
        #expect(get.errors.contains("--max-download: \"20 MB/s\" is not a rate; write e.g. 20MB/s, 100Mbit/s or 512KiB/s"), "\(get.errors)")
        await swarm.stop()
    }
}
