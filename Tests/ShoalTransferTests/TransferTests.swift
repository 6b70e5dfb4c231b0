import Foundation
import ShoalCore
import ShoalTestSupport
import Testing

/// Whole files between `shoal` processes on loopback, under faults. Each test
/// checks the copy's SHA-256 and that no partial file ever shows under the
/// final name. They run one at a time (each loads both cores). With
/// `SHOAL_LARGE_TESTS=1` the four-seeder file is 256 MiB instead of 64 MiB and
/// the file over 4 GiB runs too.
@Suite("Transfers between processes", .serialized, .timeLimit(.minutes(10)))
struct TransferTests {
    static let large = ProcessInfo.processInfo.environment["SHOAL_LARGE_TESTS"] == "1"

    /// Shares `bytes` as `name` from `seeders` seeders (hard links of one file).
    func swarm(_ name: String, _ bytes: [UInt8], seeders: Int, seederOptions: [String] = []) async throws -> ProcessSwarm {
        let swarm = try await ProcessSwarm()
        let original = swarm.root.file(name + ".original")
        FileManager.default.createFile(atPath: original, contents: Data(bytes))
        for i in 1...seeders {
            let folder = try swarm.folder("seeder\(i)")
            if link(original, folder + "/" + name) != 0 { try FileManager.default.copyItem(atPath: original, toPath: folder + "/" + name) }
            try await swarm.seed("seeder\(i)", extra: seederOptions)
        }
        return swarm
    }

    func expectIntact(_ swarm: ProcessSwarm, user: String, name: String, sha: String) {
        #expect(fileSHA256(swarm.root.file(user) + "/" + name) == sha, "the copy differs from the original")
        let partial = (try? FileManager.default.contentsOfDirectory(atPath: swarm.root.file(user) + "/.shoal/partial")) ?? []
        #expect(partial.isEmpty, "resume state left behind: \(partial)")
    }

    /// 256 MiB (64 MiB by default) from four seeders: every seeder serves, the copy is byte-identical.
    @Test func fromFourSeeders() async throws {
        let bytes = TestData.random((Self.large ? 256 : 64) << 20, seed: 11)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("big file.bin", bytes, seeders: 4)
        try await swarm.register("d")
        let get = try swarm.get("big file.bin", user: "d")
        #expect(try await get.waitForExit(timeout: 240) == 0, "\(get.errors)")
        let result = try #require(ProcessSwarm.result(get))
        let holders = try #require(result["holders"] as? [[String: Any]])
        #expect(holders.count == 4)
        #expect(holders.allSatisfy { ($0["chunks"] as? Int ?? 0) > 0 }, "\(holders)")
        expectIntact(swarm, user: "d", name: "big file.bin", sha: sha)
        await swarm.stop()
    }

    /// A seeder killed with SIGKILL mid-transfer, and one stopped with SIGSTOP (connected, silent).
    @Test(arguments: [SIGKILL, SIGSTOP])
    func seederFailsMidTransfer(signal: Int32) async throws {
        let bytes = TestData.random(96 << 20, seed: 12)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("f.bin", bytes, seeders: 3)
        try await swarm.register("d")
        // About 2 s of download (capped), so the poller sees it mid-way however fast loopback is.
        let get = try swarm.get("f.bin", user: "d", extra: ["--max-download", "48MB/s"])
        #expect(try await swarm.waitForProgress(of: "d", atLeast: 0.15))
        #expect(!FileManager.default.fileExists(atPath: swarm.root.file("d") + "/f.bin"), "a partial file under the final name")
        let victim = try #require(swarm.seeder("seeder1"))
        kill(victim.process.processIdentifier, signal)
        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        expectIntact(swarm, user: "d", name: "f.bin", sha: sha)
        if signal == SIGSTOP { kill(victim.process.processIdentifier, SIGCONT) }
        await swarm.stop()
    }

    /// A seeder whose file was corrupted on disk after it announced it: caught, reported, file intact.
    @Test func corruptedSeeder() async throws {
        let bytes = TestData.random(8 << 20, seed: 13)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("c.bin", bytes, seeders: 1)
        // Corrupt seeder1's copy in place (a private copy: break the hard link first).
        let path = swarm.root.file("seeder1") + "/c.bin"
        try FileManager.default.removeItem(atPath: path)
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        _ = try await swarm.seeder("seeder1")!.stop()
        try await swarm.seed("seeder1", register: false)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.write(contentsOf: Data(bytes.map { $0 ^ 0x5A }))
        try handle.close()
        try await swarm.register("d")
        let get = try swarm.get("c.bin", user: "d", extra: ["--log-level", "notice"])
        // The only holder is bad: wait until it is caught, then bring a good one.
        #expect(try await get.waitForErrors(containing: "dropping holder seeder1", timeout: 60), "\(get.errors)")
        let good = try swarm.folder("seeder2", files: ["c.bin": bytes])
        _ = good
        try await swarm.seed("seeder2")
        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        expectIntact(swarm, user: "d", name: "c.bin", sha: sha)
        // Its failure is reported (a fresh downloader's failure weighs 1/8, so the counter does not move: PROTOCOL.md 5.11).
        #expect(swarm.tracker.errors.contains("report: d says seeder1 failed"), "\(swarm.tracker.errors.suffix(2000))")
        await swarm.stop()
    }

    /// The downloader killed with SIGKILL at about 60 % and started again resumes.
    @Test func downloaderKilledAndResumed() async throws {
        let bytes = TestData.random(96 << 20, seed: 14)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("r.bin", bytes, seeders: 2)
        try await swarm.register("d")
        // Capped (about 2 s), so the poller sees it mid-way however fast loopback is.
        let first = try swarm.get("r.bin", user: "d", extra: ["--max-download", "48MB/s"])
        #expect(try await swarm.waitForProgress(of: "d", atLeast: 0.6))
        _ = try await first.stop(signal: SIGKILL)
        let verified = swarm.progress(of: "d")
        #expect(verified >= 0.6 && verified < 1)
        #expect(!FileManager.default.fileExists(atPath: swarm.root.file("d") + "/r.bin"), "a partial file under the final name")
        let second = try swarm.get("r.bin", user: "d")
        #expect(try await second.waitForExit(timeout: 120) == 0, "\(second.errors)")
        let result = try #require(ProcessSwarm.result(second))
        let resumed = result["resumedChunks"] as? Int ?? 0
        let fetched = result["fetchedChunks"] as? Int ?? 0
        #expect(resumed > 0 && resumed + fetched == 96 * 4, "resumed \(resumed), fetched \(fetched)")
        expectIntact(swarm, user: "d", name: "r.bin", sha: sha)
        await swarm.stop()
    }

    /// The tracker killed and restarted mid-download: the download finishes,
    /// accounts and counters are kept, the peers announce again by themselves.
    @Test func trackerRestartedMidDownload() async throws {
        let bytes = TestData.random(96 << 20, seed: 15)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("t.bin", bytes, seeders: 2)
        // A first download, so that the seeders have counters to keep.
        func counters() async throws -> [String: Int] { try await swarm.counters("countDownloads", ofUsersStartingWith: "seeder") }
        try await swarm.register("early")
        #expect(try await swarm.get("t.bin", user: "early").waitForExit(timeout: 120) == 0)
        let before = try await counters()
        #expect(before.count == 2 && before.values.reduce(0, +) >= 1, "\(before)")

        try await swarm.register("d")
        // Capped, so the download is still running when the tracker restarts.
        let get = try swarm.get("t.bin", user: "d", extra: ["--max-download", "32MB/s"])
        #expect(try await swarm.waitForProgress(of: "d", atLeast: 0.2))
        try await swarm.restartTracker()
        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        expectIntact(swarm, user: "d", name: "t.bin", sha: sha)
        // The seeders come back by themselves.
        var holders: [String] = []
        for _ in 0..<100 {
            let status = try await swarm.status()
            #expect(status["registered"] as? Int == 4)
            holders = ((status["files"] as? [[String: Any]])?.first?["holders"] as? [String]) ?? []
            if holders.count >= 2 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(Set(holders).isSuperset(of: ["seeder1", "seeder2"]), "\(holders)")
        // The counters from before the restart are still there.
        let after = try await counters()
        for (user, count) in before { #expect((after[user] ?? -1) >= count, "\(user): \(before) before, \(after) after") }
        await swarm.stop()
    }

    /// Two downloaders at once, each serving the other what it has. Each
    /// draws its first chunk at random, so they soon hold different chunks,
    /// and learn from the tracker what the other has (each announces new
    /// chunks every 0.5 s and asks every second). Then the only seeder
    /// stalls until each downloader has gained chunks it can only have got
    /// from the other.
    @Test func twoDownloadersAtOnce() async throws {
        let bytes = TestData.random(192 << 20, seed: 16)
        let sha = ChunkDigest(hashing: bytes).hex
        // The seeder is capped, so that neither download can be done before
        // the other has begun, however the two processes are scheduled.
        let swarm = try await swarm("two.bin", bytes, seeders: 1, seederOptions: ["--max-upload", "40MB/s"])
        try await swarm.register("d1")
        try await swarm.register("d2")
        let first = try swarm.get("two.bin", user: "d1")
        let second = try swarm.get("two.bin", user: "d2")
        #expect(try await swarm.waitForProgress(of: "d1", atLeast: 0.05))
        #expect(try await swarm.waitForProgress(of: "d2", atLeast: 0.05))
        let seeder = try #require(swarm.seeder("seeder1"))
        kill(seeder.process.processIdentifier, SIGSTOP)
        // Each must come to hold what the other held when the seeder stopped:
        // those chunks it can only get from the other. (Within the
        // downloaders' 15 s patience, or they give up on a stalled swarm.)
        let d1Held = DownloadWatch.held(inFolder: try swarm.folder("d1")), d2Held = DownloadWatch.held(inFolder: try swarm.folder("d2"))
        let d1GotD2s = try await DownloadWatch.wait(forFolder: try swarm.folder("d1"), toHold: d2Held, timeout: 12)
        let d2GotD1s = try await DownloadWatch.wait(forFolder: try swarm.folder("d2"), toHold: d1Held, timeout: 12)
        kill(seeder.process.processIdentifier, SIGCONT)
        #expect(d1GotD2s && d2GotD1s, "with the seeder stopped, each should get the other's chunks: d1 \(d1GotD2s), d2 \(d2GotD1s)")

        #expect(try await first.waitForExit(timeout: 120) == 0, "\(first.errors)")
        #expect(try await second.waitForExit(timeout: 120) == 0, "\(second.errors)")
        expectIntact(swarm, user: "d1", name: "two.bin", sha: sha)
        expectIntact(swarm, user: "d2", name: "two.bin", sha: sha)
        // Each must have been served by the other where the other held,
        // when the seeder stopped, chunks it lacked (only the other had them then).
        // When one held a subset of the other's chunks, only that one needed the other.
        func lacks(_ mine: [UInt8], _ theirs: [UInt8]) -> Bool {
            theirs.indices.contains { $0 >= mine.count ? theirs[$0] != 0 : theirs[$0] & ~mine[$0] != 0 }
        }
        #expect(lacks(d1Held, d2Held) || lacks(d2Held, d1Held), "the two downloads held the same chunks when the seeder stopped")
        for (user, other, process, mine, theirs) in [("d1", "d2", first, d1Held, d2Held), ("d2", "d1", second, d2Held, d1Held)] where lacks(mine, theirs) {
            let holders = ProcessSwarm.result(process)?["holders"] as? [[String: Any]] ?? []
            let served = holders.first { $0["user"] as? String == other }?["chunks"] as? Int ?? 0
            #expect(served > 0, "\(other) served \(user) nothing: \(holders)")
        }
        await swarm.stop()
    }

    /// A compressible text file asked for compressed (`--compression
    /// always`): well under its size on the wire. (On loopback the default,
    /// auto, asks for it stored: the link is faster than inflating.)
    @Test func compressibleText() async throws {
        let bytes = TestData.text(24 << 20)
        let sha = ChunkDigest(hashing: bytes).hex
        let swarm = try await swarm("log.txt", bytes, seeders: 2)
        try await swarm.register("d")
        let get = try swarm.get("log.txt", user: "d", extra: ["--compression", "always"])
        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        let result = try #require(ProcessSwarm.result(get))
        let wire = result["wireBytes"] as? Int ?? .max
        #expect(wire < bytes.count * 30 / 100, "\(wire) bytes on the wire for \(bytes.count)")
        expectIntact(swarm, user: "d", name: "log.txt", sha: sha)
        await swarm.stop()
    }

    /// Names with spaces and non-ASCII letters, an empty file, a folder of many small files.
    @Test func namesEmptyAndManySmallFiles() async throws {
        let swarm = try await ProcessSwarm()
        var files: [String: [UInt8]] = ["Καλημέρα κόσμε.txt": Array("γειά σου\n".utf8), "empty.txt": [], "with  two spaces.bin": TestData.random(70_000, seed: 3)]
        for i in 0..<40 { files["small-\(i).dat"] = TestData.random(100 + i * 97, seed: UInt64(i)) }
        _ = try swarm.folder("seeder", files: files)
        try await swarm.seed("seeder")
        // One get per file. A user has one serving session at a time, so four
        // downloaders share the list, each fetching its files one by one.
        let names = files.keys.sorted()
        let users = (0..<4).map { "d\($0)" }
        for user in users { try await swarm.register(user) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (u, user) in users.enumerated() {
                group.addTask {
                    for name in names.enumerated().filter({ $0.offset % users.count == u }).map(\.element) {
                        let get = try swarm.get(name, user: user)
                        #expect(try await get.waitForExit(timeout: 120) == 0, "\(name): \(get.errors)")
                    }
                }
            }
            try await group.waitForAll()
        }
        for (index, name) in names.enumerated() {
            expectIntact(swarm, user: users[index % users.count], name: name, sha: ChunkDigest(hashing: files[name]!).hex)
        }
        await swarm.stop()
    }

    /// A file over 4 GiB (mostly zeros, so compression keeps it quick). Only with SHOAL_LARGE_TESTS=1.
    @Test(.enabled(if: TransferTests.large, "set SHOAL_LARGE_TESTS=1 to run the file over 4 GiB"))
    func overFourGiB() async throws {
        let swarm = try await ProcessSwarm()
        let folder = try swarm.folder("seeder1")
        let path = folder + "/huge.bin"
        let size: UInt64 = (4 << 30) + (64 << 20) + 12_345
        let fd = open(path, O_CREAT | O_RDWR, 0o644)
        #expect(ftruncate(fd, off_t(size)) == 0)
        let marks = TestData.random(1 << 20, seed: 99)
        for offset in [UInt64(0), 1 << 30, 4 << 30, size - UInt64(marks.count)] {
            _ = marks.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        }
        close(fd)
        let sha = try #require(fileSHA256(path))
        try await swarm.seed("seeder1")
        try await swarm.register("d")
        let get = try swarm.get("huge.bin", user: "d")
        #expect(try await get.waitForExit(timeout: 1800) == 0, "\(get.errors)")
        expectIntact(swarm, user: "d", name: "huge.bin", sha: sha)
        await swarm.stop()
    }
}
