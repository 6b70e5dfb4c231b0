import ArgumentParser
import Foundation
import ShoalCore
import ShoalNet
import ShoalWire

/// Many concurrent clients against a `shoal tracker` process: requests per
/// second, p50 and p99 latency per request type, and the tracker's peak memory.
struct TrackerBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracker",
        abstract: "Load a tracker process with concurrent clients (register, login, announce, list, details)."
    )

    @Option(help: "Concurrent clients.")
    var clients = 500

    @Option(help: "Rounds of list + details per client after announcing.")
    var rounds = 10

    @Option(help: "PBKDF2 rounds the tracker uses (production: 210000).")
    var passwordRounds = 210_000

    @Option(help: "The shoal binary to run as the tracker (default: next to this one).")
    var shoal: String?

    @Flag(help: "Run the tracker and the clients in clear (--insecure), without TLS.")
    var insecure = false

    @Option(help: "Single logins timed one after another on an idle tracker, each on a new connection (TLS handshake included).")
    var loginSamples = 20

    @Option(help: ArgumentHelp("The tracker's --db: default a new SQLite file; a postgres://… URL runs it on that PostgreSQL database, which must be empty (the clients register bench0, bench1, …).", valueName: "path|url"))
    var db: String?

    func run() async throws {
        let binary = try shoalBinary(shoal)
        let dir = NSTemporaryDirectory() + "shoal-tracker-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tracker = try TrackerProcess(binary: binary, database: db ?? dir + "/bench.sqlite", insecure: insecure, directory: dir,
                                         options: ["--password-rounds", "\(passwordRounds)", "--max-connections", "\(clients + 64)", "--log-level", "warning"])
        let (port, security) = (tracker.port, tracker.security)
        say("tracker pid \(tracker.pid) on port \(port), \(insecure ? "in clear (--insecure)" : "TLS 1.3, pinned"); \(clients) clients, \(rounds) rounds of list + details each, PBKDF2 \(passwordRounds) rounds; database \(db.map { $0.hasPrefix("postgres") ? "PostgreSQL" : $0 } ?? "SQLite")")

        // Phase 0: login latency on an idle tracker, one login at a time, each on a new connection.
        if loginSamples > 0 {
            let probe = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(30), security: security)
            _ = try await probe.request(.register(Register(user: "latency", password: "pw-latency")), timeout: .seconds(60))
            probe.close()
            var connects: [Double] = []
            var logins: [Double] = []
            var totals: [Double] = []
            for _ in 0..<loginSamples {
                let start = ContinuousClock.now
                let connection = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(30), security: security)
                let connected = ContinuousClock.now
                guard case .loggedIn = try await connection.request(.login(Login(user: "latency", password: "pw-latency", port: 0)), timeout: .seconds(60)) else {
                    throw ValidationError("login failed")
                }
                let done = ContinuousClock.now
                connection.close()
                connects.append((connected - start).seconds * 1000)
                logins.append((done - connected).seconds * 1000)
                totals.append((done - start).seconds * 1000)
            }
            func summary(_ values: [Double]) -> String {
                let sorted = values.sorted()
                return String(format: "min %.2f  p50 %.2f  max %.2f", sorted.first!, Self.percentile(sorted, 0.5), sorted.last!)
            }
            say("")
            say("login latency, \(loginSamples) logins one at a time (ms):")
            say("  connect + \(insecure ? "" : "TLS + ")hello   " + summary(connects))
            say("  login request       " + summary(logins))
            say("  total               " + summary(totals))
            say("")
        }

        let recorder = LatencyRecorder()
        let manifests = (0..<clients).map { Self.manifest(seed: $0) }

        // Phase 1: connect, register and log in, all clients at once.
        let phase1 = ContinuousClock.now
        let sessions: [(FramedConnection, String)] = try await withThrowingTaskGroup(of: (FramedConnection, String).self) { group in
            for i in 0..<clients {
                group.addTask {
                    let connection = try await recorder.time("connect+handshake") {
                        try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(120), security: security)
                    }
                    let user = "bench\(i)"
                    _ = try await recorder.time("register") { try await connection.request(.register(Register(user: user, password: "pw-\(i)")), timeout: .seconds(600)) }
                    let reply = try await recorder.time("login") { try await connection.request(.login(Login(user: user, password: "pw-\(i)", port: 20_000 + i)), timeout: .seconds(600)) }
                    guard case let .loggedIn(session) = reply else { throw ValidationError("login failed") }
                    return (connection, session.token)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let phase1Seconds = (ContinuousClock.now - phase1).seconds

        // Phase 2: announce, then rounds of list + details.
        let cpuBefore = (tracker: Self.cpuSeconds(pid: tracker.pid), bench: Self.cpuSeconds(pid: getpid()))
        let phase2 = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, (connection, token)) in sessions.enumerated() {
                let manifest = manifests[i]
                group.addTask {
                    let file = AnnouncedFile(name: "file-\(i).bin", contentID: manifest.contentID, manifest: ManifestPayload(manifest))
                    _ = try await recorder.time("announce") { try await connection.request(.announce(Announce(token: token, replace: true, files: [file])), timeout: .seconds(120)) }
                    // Replies are checked by type, not decoded: decoding 500-row lists in
                    // this process would cost more CPU than the tracker spends serving them.
                    let list = try ListFiles(token: token).frame(requestID: 0)
                    for round in 0..<rounds {
                        let listReply = try await recorder.time("list") {
                            try await connection.requestFrame(timeout: .seconds(120)) { id in Frame(type: .list, requestID: id, payload: list.payload) }
                        }
                        guard listReply.type == .fileList else { throw ValidationError("list failed: \(listReply.type)") }
                        let other = (i + round + 1) % sessions.count
                        let details = try Details(token: token, name: "file-\(other).bin").frame(requestID: 0)
                        let detailsReply = try await recorder.time("details") {
                            try await connection.requestFrame(timeout: .seconds(120)) { id in Frame(type: .details, requestID: id, payload: details.payload) }
                        }
                        guard detailsReply.type == .fileDetails else { throw ValidationError("details failed: \(detailsReply.type)") }
                    }
                }
            }
            try await group.waitForAll()
        }
        let phase2Seconds = (ContinuousClock.now - phase2).seconds
        let trackerCPU = Self.cpuSeconds(pid: tracker.pid) - cpuBefore.tracker
        let benchCPU = Self.cpuSeconds(pid: getpid()) - cpuBefore.bench
        let peak = Self.memory(pid: tracker.pid)
        for (connection, _) in sessions { connection.close() }
        tracker.stop()

        say("")
        say(pad("request", 20) + pad("count", 8) + pad("req/s", 10) + pad("p50 ms", 10) + "p99 ms")
        let phases = ["connect+handshake": phase1Seconds, "register": phase1Seconds, "login": phase1Seconds,
                      "announce": phase2Seconds, "list": phase2Seconds, "details": phase2Seconds]
        for name in ["connect+handshake", "register", "login", "announce", "list", "details"] {
            let samples = await recorder.samples(name)
            guard !samples.isEmpty else { continue }
            let rate = Double(samples.count) / phases[name]!
            say(pad(name, 20) + pad("\(samples.count)", 8) + pad(String(format: "%.0f", rate), 10)
                + pad(String(format: "%.2f", Self.percentile(samples, 0.50)), 10) + String(format: "%.2f", Self.percentile(samples, 0.99)))
        }
        let total1 = await recorder.count(["register", "login"])
        let total2 = await recorder.count(["announce", "list", "details"])
        say("")
        say(String(format: "phase 1 (register + login): %d requests in %.1f s = %.0f req/s", total1, phase1Seconds, Double(total1) / phase1Seconds))
        say(String(format: "phase 2 (announce, list, details): %d requests in %.1f s = %.0f req/s", total2, phase2Seconds, Double(total2) / phase2Seconds))
        say(String(format: "phase 2 CPU: tracker %.1f s, clients %.1f s (2 cores shared by both)", trackerCPU, benchCPU))
        say("tracker peak memory (VmHWM): \(peak.peak / 1024) MiB; resident at the end: \(peak.resident / 1024) MiB")
    }

    static func manifest(seed: Int) -> Manifest {
        // 64 chunks of 256 KiB: a 16 MiB file's manifest, built from digests directly.
        let digests = (0..<64).map { ChunkDigest(hashing: Array("bench-\(seed)-\($0)".utf8)) }
        return try! Manifest(fileSize: 64 * 256 * 1024, chunkSize: 256 * 1024, digests: digests)
    }

    static func readLine(_ handle: FileHandle) -> String? {
        var bytes = Data()
        while true {
            let byte = handle.readData(ofLength: 1)
            if byte.isEmpty { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte.first == 0x0A { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }

    /// Peak and current resident memory of `pid`, in KiB, from /proc.
    static func memory(pid: Int32) -> (peak: Int, resident: Int) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return 0 }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return (field("VmHWM:"), field("VmRSS:"))
    }

    /// User + system CPU seconds used by `pid` so far.
    static func cpuSeconds(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, utime 14 and stime 15 (1-based).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
    func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count + 1), withPad: " ", startingAt: 0) }
}

/// Latencies by request type, in milliseconds.
actor LatencyRecorder {
    private var byName: [String: [Double]] = [:]

    func record(_ name: String, _ milliseconds: Double) { byName[name, default: []].append(milliseconds) }

    nonisolated func time<T: Sendable>(_ name: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        let value = try await body()
        await record(name, (ContinuousClock.now - start).seconds * 1000)
        return value
    }

    func samples(_ name: String) -> [Double] { (byName[name] ?? []).sorted() }
    func count(_ names: [String]) -> Int { names.reduce(0) { $0 + (byName[$1]?.count ?? 0) } }
}

