import Foundation
import ShoalCore
import ShoalLab
import ShoalTestSupport
import Testing

/// Whole files between `shoal` processes on separate test hosts (network
/// namespaces joined by a bridge, addresses in 198.18.0.0/24): the tracker,
/// the seeders and the downloader each on its own host, so every chunk
/// crosses a link that can fail. These need root and iproute2; without them
/// they fail with the lab's message, never skip.
@Suite("Transfers across hosts", .serialized, .timeLimit(.minutes(4)))
struct CrossHostTests {
    /// A swarm with a tracker host plus `seeders` and `downloader` hosts; each
    /// seeder shares `bytes` as `name` (its own copy); seeders whose user is
    /// a key of `extra` get those arguments.
    func swarm(_ name: String, _ bytes: [UInt8], seeders: [String], downloader: String = "d",
               shapes: [String: LinkShape] = [:], extra: (NetworkLab) throws -> [String: [String]] = { _ in [:] }) async throws -> LabSwarm {
        let swarm = try await LabSwarm(hosts: seeders + [downloader])
        do {
            if !shapes.isEmpty { try swarm.lab.shape(shapes) }
            let arguments = try extra(swarm.lab)
            for seeder in seeders {
                _ = try swarm.folder(seeder, files: [name: bytes])
                try await swarm.seed(seeder, extra: arguments[seeder] ?? [])
            }
            try await swarm.register(downloader)
        } catch {
            swarm.tearDown()
            throw error
        }
        return swarm
    }

    func expectIntact(_ swarm: LabSwarm, user: String, name: String, sha: String) {
        #expect(fileSHA256(swarm.root.file(user) + "/" + name) == sha, "the copy differs from the original")
        let partial = (try? FileManager.default.contentsOfDirectory(atPath: swarm.root.file(user) + "/.shoal/partial")) ?? []
        #expect(partial.isEmpty, "resume state left behind: \(partial)")
    }

    func holders(_ get: ShoalProcess) throws -> [String: [String: Any]] {
        let result = try #require(ProcessSwarm.result(get), "shoal get printed no result: \(get.lines)")
        let list = try #require(result["holders"] as? [[String: Any]], "no holders in \(result)")
        return Dictionary(list.compactMap { holder in (holder["user"] as? String).map { ($0, holder) } }, uniquingKeysWith: { a, _ in a })
    }

    /// Tracker, two seeders and a downloader on four hosts: both seeders serve, at their lab addresses, and the copy is byte-identical.
    @Test func downloadAcrossHosts() async throws {
        let bytes = TestData.random(8 << 20, seed: 21)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("across.bin", bytes, seeders: ["s1", "s2"])
        defer { swarm.tearDown() }
        let get = try swarm.get("across.bin", user: "d")
        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        expectIntact(swarm, user: "d", name: "across.bin", sha: sha)
        let holders = try holders(get)
        for seeder in ["s1", "s2"] {
            let holder = holders[seeder]
            let address = try swarm.lab.address(of: seeder)
            #expect(holder?["host"] as? String == address, "\(seeder) listed at \(holder?["host"] ?? "nowhere"), not \(address)")
            #expect((holder?["chunks"] as? Int ?? 0) > 0, "\(seeder) served nothing: \(holders)")
        }
        await swarm.stop()
    }

    /// A seeder whose link goes down mid-transfer (links at 40 Mbit/s so there is a middle): the other seeder finishes the file, byte-identical.
    @Test func seederLinkDownMidTransfer() async throws {
        let bytes = TestData.random(24 << 20, seed: 22)
        let sha = ChunkDigest(hashing: bytes).hex
        let shapes = ["s1": LinkShape(rateMbit: 40), "s2": LinkShape(rateMbit: 40)]
        let swarm = try await swarm("cut.bin", bytes, seeders: ["s1", "s2"], shapes: shapes)
        defer { swarm.tearDown() }
        let get = try swarm.get("cut.bin", user: "d")
        #expect(try await swarm.waitForProgress(of: "d", atLeast: 0.2, timeout: 60), "the download did not start: \(get.errors)")
        #expect(swarm.progress(of: "d") < 0.9, "the download was nearly done before the link went down")
        try swarm.lab.setLink("s1", up: false)
        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        expectIntact(swarm, user: "d", name: "cut.bin", sha: sha)
        let holders = try holders(get)
        #expect((holders["s2"]?["chunks"] as? Int ?? 0) > 0, "\(holders)")
        await swarm.stop()
    }

    /// Where the dead holder says it serves: an address no host has (connects time out), or a port nobody listens on (refused).
    enum DeadAddress: String, CaseIterable, Sendable {
        case unusedAddress, closedPort
    }

    /// A holder advertised where nothing answers: the download finishes from the other seeder (16 MiB at 24 Mbit/s: longer than a failed connect takes), and the tracker gets a failure report for it.
    @Test(arguments: DeadAddress.allCases)
    func holderAtDeadAddress(_ dead: DeadAddress) async throws {
        let bytes = TestData.random(16 << 20, seed: 23)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("dead.bin", bytes, seeders: ["s1", "ghost"], shapes: ["s1": LinkShape(rateMbit: 24)]) { lab in
            switch dead {
            case .unusedAddress: ["ghost": ["--advertise", NetworkLab.unusedAddress]]
            case .closedPort: ["ghost": ["--advertise", "\(try lab.address(of: "ghost")):1"]]
            }
        }
        defer { swarm.tearDown() }
        let get = try swarm.get("dead.bin", user: "d")
        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        expectIntact(swarm, user: "d", name: "dead.bin", sha: sha)
        let holders = try holders(get)
        #expect((holders["s1"]?["chunks"] as? Int ?? 0) == 64, "\(holders)")
        #expect((holders["ghost"]?["chunks"] as? Int ?? 0) == 0, "\(holders)")
        // Reports are sent at the end of the download; the tracker has them once get has exited.
        let failures = try await swarm.counters("countFailures", from: "d")
        // A holder that cannot be reached is not reported (PROTOCOL.md 5.11).
        #expect(failures["ghost"] == 0, "failure counts: \(failures)")
        #expect(failures["s1"] == 0, "failure counts: \(failures)")
        await swarm.stop()
    }
}
