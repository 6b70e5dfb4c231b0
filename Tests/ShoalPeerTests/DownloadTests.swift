import Foundation
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalTestSupport
import ShoalWire
import Testing

/// The download engine over real loopback sockets, with a real tracker.
@Suite("Downloads", .timeLimit(.minutes(3)))
struct DownloadTests {
    /// A multi-chunk file from three seeders: fetched in parallel, the file is byte-identical.
    @Test func threeSeeders() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(12 << 20, seed: 1)   // 48 chunks of 256 KiB
        for i in 1...3 { _ = try await swarm.peer("seeder\(i)", folder: try swarm.folder("seeder\(i)", files: ["big.bin": bytes])) }
        let downloader = try await swarm.peer("downloader", folder: try swarm.folder("downloader"))
        let result = try await downloader.download(name: "big.bin")
        let path = try swarm.folder("downloader") + "/big.bin"
        #expect(sha256(ofFile: path) == ChunkDigest(hashing: bytes).hex)
        #expect(result.fetchedChunks == 48)
        #expect(result.holders.count == 3)
        // In parallel: each holder is asked for chunks from the start, and
        // the first verified copy of a chunk wins. Not every one of them:
        // the seeders share this process with the rest of the suite, and
        // one left without a thread for a moment has its chunks fetched
        // from the others (seen once in a full run: one seeder served all 48).
        let served = result.holders.filter { $0.chunks > 0 }
        #expect(served.count >= 2, "\(result.holders.map { ($0.user, $0.chunks, $0.failed ?? "") })")
        // No partial file is left behind, and the downloader now shares the file.
        #expect(try FileManager.default.contentsOfDirectory(atPath: swarm.folder("downloader") + "/.shoal/partial").isEmpty)
        let details = try await swarm.peers[0].session.details(name: "big.bin")
        #expect(details.files.first?.holders.contains { $0.user == "downloader" } == true)
        // Each seeder that served was reported once, as a success.
        let status = try await swarm.tracker.connect().status(operatorToken: swarm.tracker.operatorToken)
        let servers = Set(served.map(\.user))
        let reported = status.peers.filter { servers.contains($0.user) }
        #expect(reported.count == servers.count)
        #expect(reported.allSatisfy { $0.countDownloads == 1 && $0.countFailures == 0 }, "\(reported)")
        await swarm.stop()
    }

    /// A listed holder that cannot be reached is not reported (it may be the
    /// network's fault); the seeder that served is reported as a success.
    @Test func unreachableHoldersAreNotReported() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(1 << 20, seed: 11)
        _ = try await swarm.peer("s", folder: try swarm.folder("s", files: ["f.bin": bytes]))
        let manifest = try ManifestBuilder().build(path: try swarm.folder("s") + "/f.bin")
        // A holder at an address where nothing listens (port 1 on loopback refuses).
        let ghost = try await swarm.tracker.connect()
        let ghostToken = try await ghost.signUp("ghost", port: 1)
        try await ghost.announce(ghostToken, [("f.bin", manifest)])
        let downloader = try await swarm.peer("d", folder: try swarm.folder("d"))
        _ = try await downloader.download(name: "f.bin")
        #expect(sha256(ofFile: try swarm.folder("d") + "/f.bin") == ChunkDigest(hashing: bytes).hex)
        #expect(swarm.tracker.log.contains("report: d says s served"))
        #expect(!swarm.tracker.log.contains("says ghost"), "the unreachable holder was reported")
        ghost.close()
        await swarm.stop()
    }

    /// An unknown name, a path-escaping name and a name with no reachable holder give clear errors.
    @Test func badNames() async throws {
        let swarm = try await TestSwarm()
        let peer = try await swarm.peer("alone", folder: try swarm.folder("alone"))
        for (name, fragment) in [("missing.txt", "no connected peer shares"), ("../../etc/passwd", "cannot download"), ("a/b", "cannot download")] {
            do {
                _ = try await peer.download(name: name)
                Issue.record("\(name) downloaded")
            } catch {
                #expect("\(error)".contains(fragment), "\(error)")
            }
        }
        await swarm.stop()
    }
}

@Suite("Downloads under faults", .timeLimit(.minutes(3)))
struct FaultTests {
    /// A seeder that goes away mid-download: the others finish, the file is byte-identical.
    @Test func seederKilledMidDownload() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(10 << 20, seed: 2)   // 40 chunks
        var seeders: [Peer] = []
        for i in 1...3 { seeders.append(try await swarm.peer("s\(i)", folder: try swarm.folder("s\(i)", files: ["f.bin": bytes]))) }
        let downloader = try await swarm.peer("d", folder: try swarm.folder("d"))
        let victim = seeders[0]
        let killed = ManagedFlag()
        let result = try await downloader.download(name: "f.bin") { progress in
            if progress.fraction > 0.25, killed.setOnce() {
                // Abruptly: the server closes every connection, the tracker session drops.
                Task { await victim.server.stop() }
            }
        }
        #expect(killed.isSet)
        #expect(sha256(ofFile: try swarm.folder("d") + "/f.bin") == ChunkDigest(hashing: bytes).hex)
        #expect(result.fetchedChunks == 40)
        await swarm.stop()
    }

    /// A seeder whose file was corrupted on disk after it announced it: its bad
    /// chunks are caught, it is dropped and reported, and the file is still right.
    @Test func corruptSeederIsPenalized() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(4 << 20, seed: 3)
        let badFolder = try swarm.folder("bad", files: ["f.bin": bytes])
        _ = try await swarm.peer("bad", folder: badFolder)
        // Corrupt every byte on disk, in place, after the announce.
        let handle = try #require(FileHandle(forWritingAtPath: badFolder + "/f.bin"))
        try handle.write(contentsOf: Data(bytes.map { $0 ^ 0xFF }))
        try handle.close()
        // The download starts with the bad holder alone, so it is surely asked;
        // the good one arrives while it runs and is found by the holder refresh.
        let downloader = try await swarm.peer("d", folder: try swarm.folder("d"))
        let download = Task { try await downloader.download(name: "f.bin") }
        _ = try await swarm.peer("good", folder: try swarm.folder("good", files: ["f.bin": bytes]))
        let result = try await download.value
        #expect(sha256(ofFile: try swarm.folder("d") + "/f.bin") == ChunkDigest(hashing: bytes).hex)
        let bad = try #require(result.holders.first { $0.user == "bad" })
        #expect(bad.chunks == 0)
        #expect(bad.failed?.contains("hashes to") == true, "\(bad.failed ?? "not dropped")")
        let status = try await swarm.tracker.connect().status(operatorToken: swarm.tracker.operatorToken)
        // Its failure is reported (a fresh downloader's failure weighs 1/8, so the counter does not move: PROTOCOL.md 5.11).
        #expect(swarm.tracker.log.contains("report: d says bad failed"))
        #expect(status.peers.first { $0.user == "good" }?.countDownloads == 1)
        await swarm.stop()
    }

    /// When every holder goes, the download ends once its patience is spent,
    /// with a clear error, asking the tracker only at its refresh pace.
    @Test func vanishedHoldersEndTheDownload() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(16 << 20, seed: 5)
        let seeder = try await swarm.peer("only", folder: try swarm.folder("only", files: ["v.bin": bytes]))
        let downloader = try await swarm.peer("d", folder: try swarm.folder("d")) { configuration in
            configuration.patience = 1.5
            configuration.refreshInterval = 0.2
        }
        let gone = ManagedFlag()
        let asked = ManagedCount()
        let started = ContinuousClock.now
        do {
            _ = try await downloader.download(name: "v.bin") { progress in
                if progress.fraction > 0.2, gone.setOnce() {
                    Task {
                        asked.set(await downloader.session.requestsSent)
                        await seeder.stop()
                    }
                }
            }
            Issue.record("the download finished without its only holder")
        } catch let error as DownloadError {
            #expect("\(error)".contains("every holder of \"v.bin\" left or failed"), "\(error)")
            #expect(error.description.contains("still missing"))
        }
        let waited = (ContinuousClock.now - started).seconds
        #expect(waited >= 1.5 && waited < 30, "gave up after \(waited) s")
        // About one details request per refresh interval while waiting, not a busy loop.
        let requests = await downloader.session.requestsSent - asked.value
        #expect(requests <= Int(waited / 0.2) + 10, "\(requests) requests in \(waited) s")
        #expect(try FileManager.default.contentsOfDirectory(atPath: swarm.folder("d") + "/.shoal/partial").count == 3, "verified chunks are kept")
        await swarm.stop()
    }

    /// A download stopped midway resumes from the verified chunks on disk without fetching them again.
    @Test func resumeAfterStop() async throws {
        let swarm = try await TestSwarm()
        let bytes = randomBytes(16 << 20, seed: 4)   // 64 chunks
        _ = try await swarm.peer("seed", folder: try swarm.folder("seed", files: ["r.bin": bytes]))
        let folder = try swarm.folder("d")
        let first = try await swarm.peer("d", folder: folder)
        // The progress callback cancels the download itself once 40 % is in:
        // deterministic, whatever the speed of the machine.
        let handle = TaskHandle()
        let task = Task {
            try await first.download(name: "r.bin") { progress in
                if progress.fraction > 0.4 { handle.cancel() }
            }
        }
        handle.set(task)
        do {
            _ = try await task.value
            Issue.record("the download finished before it was stopped")
        } catch is CancellationError {}
        await first.stop()
        #expect(!FileManager.default.fileExists(atPath: folder + "/r.bin"), "no partial file under the final name")

        let second = try await swarm.start("d", folder: folder)
        let result = try await second.download(name: "r.bin")
        #expect(result.resumedChunks > 0)
        #expect(result.resumedChunks + result.fetchedChunks == 64)
        #expect(sha256(ofFile: folder + "/r.bin") == ChunkDigest(hashing: bytes).hex)
        await swarm.stop()
    }
}

/// A task that a callback running inside it can cancel.
final class TaskHandle: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<DownloadResult, any Error>?
    private var cancelled = false
    func set(_ task: Task<DownloadResult, any Error>) {
        let cancelNow = lock.withLock { () -> Bool in
            self.task = task
            return cancelled
        }
        if cancelNow { task.cancel() }
    }
    func cancel() {
        let task = lock.withLock { () -> Task<DownloadResult, any Error>? in
            cancelled = true
            return self.task
        }
        task?.cancel()
    }
}

/// A number set from one task and read from another.
final class ManagedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = 0
    func set(_ value: Int) { lock.withLock { stored = value } }
    var value: Int { lock.withLock { stored } }
}

/// Set once, read from anywhere.
final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    /// Sets the flag; true only for the first caller.
    func setOnce() -> Bool { lock.withLock { defer { value = true }; return !value } }
    var isSet: Bool { lock.withLock { value } }
}
