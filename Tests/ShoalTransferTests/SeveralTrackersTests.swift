#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShoalCore
import ShoalTestSupport
import Testing

/// Two `shoal tracker` processes on one PostgreSQL database, serving one
/// swarm; peers given both (`--tracker a,b`). One instance is killed
/// (SIGKILL) in the middle of a download from three seeders.
@Suite("Several trackers on one database", .timeLimit(.minutes(4)))
struct SeveralTrackersTests {
    /// One instance of the pair: its process, port and operator token file.
    struct Instance {
        let process: ShoalProcess
        let port: Int
        let fingerprint: String
        let tokenFile: String
        var address: String { "127.0.0.1:\(port)" }
    }

    /// Starts `shoal tracker` on `database`, in `directory` (where the pair's
    /// certificate is kept: the second instance loads the first one's, so
    /// peers pin one fingerprint for both).
    static func startInstance(_ name: String, database: String, directory: TemporaryDirectory) async throws -> Instance {
        let tokenFile = directory.file("token-\(name)")
        let process = try ShoalProcess(["tracker", "--port", "0", "--db", database, "--password-rounds", "1000",
                                        "--probe-interval", "5", "--probe-timeout", "10", "--token-file", tokenFile],
                                       currentDirectory: directory.path)
        let line = try await process.waitForLine { $0.hasPrefix("listening on") }
        let port = try #require(line.flatMap(ShoalProcess.port(fromListeningLine:)), "tracker \(name) did not start: \(process.errors)")
        let fingerprint = try #require(try await process.waitForFingerprint(), "tracker \(name) printed no fingerprint: \(process.errors)")
        return Instance(process: process, port: port, fingerprint: fingerprint, tokenFile: tokenFile)
    }

    /// The status document of `instance`, as its operator sees it.
    static func status(of instance: Instance) async throws -> [String: Any] {
        let process = try ShoalProcess(["tracker", "status", "--token-file", instance.tokenFile, "--tracker", instance.address,
                                        "--tracker-fingerprint", instance.fingerprint, "--json"])
        _ = try await process.waitForExit()
        return (try? JSONSerialization.jsonObject(with: Data(process.lines.joined(separator: "\n").utf8)) as? [String: Any]) ?? [:]
    }

    /// Users connected to `instance`'s swarm, by its status.
    static func connected(on instance: Instance) async throws -> Set<String> {
        let peers = try await status(of: instance)["peers"] as? [[String: Any]] ?? []
        return Set(peers.filter { $0["connected"] as? Bool == true }.compactMap { $0["user"] as? String })
    }

    @Test func instanceKilledMidDownload() async throws {
        let cluster = try await PostgresCluster.shared()
        let database = try await cluster.newDatabase()
        let url = cluster.tcpURL(of: database.database)
        let root = try TemporaryDirectory("shoal-several-trackers")
        defer { root.remove() }
        let a = try await Self.startInstance("a", database: url, directory: root)
        let b = try await Self.startInstance("b", database: url, directory: root)
        defer { Task { _ = try? await a.process.stop(); _ = try? await b.process.stop() } }
        #expect(a.fingerprint == b.fingerprint, "both instances serve the certificate kept in their directory")
        // Peers on a list a's first, and peers on b's first.
        let aFirst = ["--tracker", "\(a.address),\(b.address)", "--tracker-fingerprint", a.fingerprint]
        let bFirst = ["--tracker", "\(b.address),\(a.address)", "--tracker-fingerprint", a.fingerprint]

        func folder(_ user: String) throws -> String {
            let path = root.file(user)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            return path
        }
        let onB: Set = ["s3", "early"]
        func run(_ arguments: [String], user: String) throws -> ShoalProcess {
            try ShoalProcess(arguments + ["--user", user] + (onB.contains(user) ? bFirst : aFirst), environment: ["SHOAL_PASSWORD": "pw-\(user)"])
        }
        let users = ["s1", "s2", "s3", "early", "d"]
        for user in users {
            let register = try run(["register"], user: user)
            #expect(try await register.waitForExit() == 0, "register \(user): \(register.errors)")
        }

        // Three seeders of a file, and of a small one: s1 and s2 on a, s3 on b.
        let bytes = TestData.random(96 << 20, seed: 61)
        let small = TestData.random(3 << 20, seed: 62)
        var seeders: [ShoalProcess] = []
        defer { for seeder in seeders { Task { _ = try? await seeder.stop() } } }
        for user in ["s1", "s2", "s3"] {
            let dir = try folder(user)
            try Data(bytes).write(to: URL(fileURLWithPath: dir + "/big.bin"))
            try Data(small).write(to: URL(fileURLWithPath: dir + "/small.bin"))
            let seeder = try run(["seed", "--dir", dir, "--listen", "127.0.0.1:0"], user: user)
            #expect(try await seeder.waitForLine(timeout: 120) { $0.hasPrefix("serving on") } != nil, "\(user): \(seeder.errors)")
            seeders.append(seeder)
        }

        // A first download, on b, whose reports move the seeders' counters before anything fails.
        let early = try run(["get", "small.bin", "--dir", try folder("early"), "--listen", "127.0.0.1:0", "--json"], user: "early")
        #expect(try await early.waitForExit(timeout: 60) == 0, "\(early.errors)")
        let before = DownloadWatch.counters("countDownloads", in: try await Self.status(of: a), ofUsersStartingWith: "s")
        #expect(before.values.reduce(0, +) > 0, "the first download was reported: \(before)")

        // The download, on a, slow enough to be in the middle when a dies; s3 is known to a through b.
        let get = try run(["get", "big.bin", "--dir", try folder("d"), "--listen", "127.0.0.1:0", "--json", "--max-download", "12MB/s"], user: "d")
        #expect(try await DownloadWatch.wait(forFolder: root.file("d"), atLeast: 0.2, timeout: 60), "the download did not get going: \(get.errors)")
        #expect(try await Self.connected(on: a).isSuperset(of: ["s1", "s2", "s3", "d"]), "a lists b's peers too")
        let killed = Date()
        let logBefore = b.process.errors.count
        _ = try await a.process.stop(signal: SIGKILL)
        #expect(DownloadWatch.progress(ofFolder: root.file("d")) < 1, "the instance died in the middle of the download")

        // Every peer of a logs in on b by itself, within the lease.
        // (Its log, not its status, tells: b may list a's sessions until their lease ends.)
        func loggedInOnB() -> Set<String> {
            let log = String(b.process.errors.dropFirst(logBefore))
            return Set(["s1", "s2", "d"].filter { log.contains("login: \($0) ") || log.contains("login: \($0)\n") })
        }
        var back: Set<String> = []
        while Date().timeIntervalSince(killed) < 20 {
            back = loggedInOnB()
            if back.isSuperset(of: ["s1", "s2"]) && (back.contains("d") || !get.process.isRunning) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let after = Date().timeIntervalSince(killed)
        print("several trackers: peers logged in on the other instance \(String(format: "%.2f", after)) s after SIGKILL: \(back.sorted())")
        #expect(back.isSuperset(of: ["s1", "s2"]) && after <= 15, "back on b after \(after) s: \(back)")
        #expect(try await Self.connected(on: b).isSuperset(of: ["s1", "s2", "s3"]))

        #expect(try await get.waitForExit(timeout: 120) == 0, "\(get.errors)")
        #expect(fileSHA256(root.file("d") + "/big.bin") == ChunkDigest(hashing: bytes).hex, "byte-identical")
        let holders = ProcessSwarm.result(get)?["holders"] as? [[String: Any]] ?? []
        let fromS3 = holders.first { $0["user"] as? String == "s3" }?["chunks"] as? Int ?? 0
        #expect(fromS3 > 0, "s3, on the other instance, served the download too: \(holders)")

        // Nothing lost: every account, and the counters from before (now grown by the second download's reports).
        let status = try await Self.status(of: b)
        #expect(status["registered"] as? Int == users.count)
        var counters: [String: Int] = [:]
        let deadline = Date().addingTimeInterval(10)
        repeat {
            counters = DownloadWatch.counters("countDownloads", in: try await Self.status(of: b), ofUsersStartingWith: "s")
            if counters.values.reduce(0, +) > before.values.reduce(0, +) { break }
            try await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        for (user, count) in before { #expect((counters[user] ?? -1) >= count, "\(user): \(before) before, \(counters) after") }
        #expect(counters.values.reduce(0, +) > before.values.reduce(0, +), "the second download was reported through b: \(counters)")
        try await cluster.drop(database.database)
    }
}
