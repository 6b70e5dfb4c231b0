import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import ShoalCore
import ShoalNet
import ShoalPeer
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

    @Option(help: "Clients that log in again and again (each time on a new connection) during phase 3; 0 skips phase 3.")
    var stormClients = 8

    @Option(help: "Rounds of list + details per client in phase 3, while the storm clients log in.")
    var stormRounds = 20

    @Option(help: ArgumentHelp("The tracker's --db: default a new SQLite file; a postgres://… URL runs it on that PostgreSQL database, which must be empty (the clients register bench0, bench1, …).", valueName: "path|url"))
    var db: String?

    @Option(help: "Tracker instances on the one database (more than 1 needs a postgres:// --db); client i talks to instance i % instances, and figures are given per instance.")
    var instances = 1

    @Option(help: ArgumentHelp("Phase 2 as an open loop at this offered load (requests per second, all clients together): each client sends on a fixed schedule whatever the replies do, and each request is timed from when it was due. Without it, each client waits for each reply (a closed loop: the most the tracker serves, with latency = clients / rate).", valueName: "req/s"))
    var rate: Int?

    @Flag(help: "With --rate: print latencies by when the requests were due, in windows of 100 ms.")
    var timeline = false

    @Flag(name: .customLong("plain-sockets"), help: "With --rate, --insecure, --storm-clients 0 and one instance: run phase 2's clients on plain sockets, one thread with epoll, instead of NIO (new logins of phase 1's accounts, made before the timed phase): the clients then take much less of the cores they share with the tracker.")
    var plainSockets = false

    @Flag(name: .customLong("object-rows"), help: "Ask for list rows as objects, as clients before compact lists did (about 19 KB a page here, against 12 KB as arrays).")
    var objectRows = false

    func validate() throws {
        if let rate, rate < 1 || rate > 10_000_000 { throw ValidationError("--rate: give 1 … 10000000 requests per second") }
        guard instances >= 1 && instances <= 16 else { throw ValidationError("--instances: give 1 … 16") }
        if plainSockets && (rate == nil || !insecure || stormClients > 0 || instances != 1) {
            throw ValidationError("--plain-sockets runs a paced phase 2 in clear on one instance: give it with --rate, --insecure, --storm-clients 0 and one instance")
        }
        if instances > 1 && !(db ?? "").hasPrefix("postgres") {
            throw ValidationError("--instances \(instances) needs a shared database: give --db postgres://USER@HOST:PORT/DB (an empty database)")
        }
    }

    func run() async throws {
        let binary = try shoalBinary(shoal)
        let dir = NSTemporaryDirectory() + "shoal-tracker-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One after another, in one directory: the first makes the certificate, the others load it.
        var trackers: [TrackerProcess] = []
        for _ in 0..<instances {
            trackers.append(try TrackerProcess(binary: binary, database: db ?? dir + "/bench.sqlite", insecure: insecure, directory: dir,
                                               options: ["--password-rounds", "\(passwordRounds)", "--max-connections", "\((plainSockets ? 2 : 1) * clients / instances + 64)",
                                                         "--log-level", "warning"]))
        }
        let tracker = trackers[0]
        let (port, security) = (tracker.port, tracker.security)
        say("tracker\(instances > 1 ? "s" : "") pid \(trackers.map { "\($0.pid)" }.joined(separator: ", ")) on port \(trackers.map { "\($0.port)" }.joined(separator: ", ")), \(insecure ? "in clear (--insecure)" : "TLS 1.3, pinned"); \(clients) clients, \(rounds) rounds of list + details each, PBKDF2 \(passwordRounds) rounds; database \(db.map { $0.hasPrefix("postgres") ? "PostgreSQL" : $0 } ?? "SQLite")")

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

        // The clients run on one event loop of their own (one core at most), each a
        // LoadClient handler: see its comment for why. Client i talks to
        // addresses[i % count], so a list of trackers shares the load.
        let addresses = trackers.map { TrackerAddress(host: "127.0.0.1", port: $0.port, security: $0.security) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let manifests = (0..<clients).map { Self.manifest(seed: $0) }
        var results: [String: [Double]] = [:]
        var phaseOf: [String: Double] = [:]
        /// Samples by instance too, when there are several.
        var byInstance: [Int: [String: [Double]]] = [:]
        func collect(_ clients: [LoadClient], seconds: Double, suffix: String = "") async throws {
            for client in clients {
                let samples = try await client.takeSamples().get()
                for kind in LoadClient.Kind.allCases where !samples[kind.rawValue].isEmpty {
                    results[kind.name + suffix, default: []].append(contentsOf: samples[kind.rawValue])
                    byInstance[client.index % instances, default: [:]][kind.name + suffix, default: []].append(contentsOf: samples[kind.rawValue])
                    phaseOf[kind.name + suffix] = seconds
                }
            }
        }

        // Phase 1: connect, register and log in, all clients at once.
        let phase1 = ContinuousClock.now
        let announces = AnnounceLog()
        let load = (0..<clients).map {
            LoadClient.connect(index: $0, to: addresses[$0 % addresses.count], fileCount: clients, manifest: manifests[$0],
                               compactList: !objectRows, announces: announces, loop: loop)
        }
        try await EventLoopFuture.andAllSucceed(load.map(\.ready.futureResult), on: loop).get()
        let phase1Seconds = (ContinuousClock.now - phase1).seconds
        try await collect(load, seconds: phase1Seconds)

        // Phase 2: announce, then rounds of list + details. With several
        // instances, every announce first, then until every instance lists
        // every file (a client asks details of files announced on the others).
        var convergence: [Double] = []
        if instances > 1 {
            let announced = ContinuousClock.now
            try await EventLoopFuture.andAllSucceed(load.map { $0.prepare(announcing: true, rounds: 0) }, on: loop).get()
            try await EventLoopFuture.andAllSucceed(load.map { $0.run() }, on: loop).get()
            try await collect(load, seconds: (ContinuousClock.now - announced).seconds)
            for (k, instance) in trackers.enumerated() {
                let listed = try await Self.waitUntilListed(clients, on: instance, checker: "checker\(k)", timeout: 60)
                guard listed.count == clients else {
                    throw ValidationError("instance \(k + 1) listed \(listed.count) of \(clients) files after 60 s")
                }
                convergence.append((ContinuousClock.now - announced).seconds)
            }
        }
        var plain: PlainLoadClients?
        if plainSockets {
            try await EventLoopFuture.andAllComplete(load.map { $0.close() }, on: loop).get()
            plain = try await PlainLoadClients.connectOnThread(count: clients, ports: trackers.map(\.port), fileCount: clients, manifests: manifests,
                                                               compactList: !objectRows, announcing: true, rounds: rounds)
            say("phase 2 clients: plain sockets on one epoll thread (--plain-sockets), logged in again")
        } else {
            try await EventLoopFuture.andAllSucceed(load.map { $0.prepare(announcing: instances == 1, rounds: rounds) }, on: loop).get()
        }
        var plainResults: PlainLoadClients.Results?
        let cpuBefore = (trackers: trackers.map { Self.cpuSeconds(pid: $0.pid) }, bench: Self.cpuSeconds(pid: getpid()))
        let machineBefore = MachineTime.now()
        let phase2 = ContinuousClock.now
        if let rate {
            // Client i's requests are due every clients/rate seconds, the clients evenly staggered.
            let period = TimeAmount.nanoseconds(Int64(Double(clients) / Double(rate) * 1e9))
            let start = NIODeadline.now() + .milliseconds(10)
            let schedule = PacedSchedule(clients: clients, start: start, period: period, requestsEach: (instances == 1 ? 1 : 0) + 2 * rounds)
            if let engine = plain {
                let measured = try await PlainLoadClients.runOnThread(engine, schedule: schedule)
                plainResults = measured
                if timeline { printTimeline(measured.timeline, start: start) }
            } else {
                let runs = load.enumerated().map { i, client in
                    client.runPaced(start: PacedSchedule.due(start: start, period: period, client: i, of: clients, request: 0), period: period)
                }
                let due = NIOLoopBoundBox.makeBoxSendingValue(schedule, eventLoop: loop)
                let ticker = loop.scheduleRepeatedTask(initialDelay: .zero, delay: PacedSchedule.tick) { _ in
                    let now = NIODeadline.now()
                    due.value.takeDue(by: now) { client, _ in load[client].tick(now: now) }
                }
                defer { ticker.cancel() }
                try await EventLoopFuture.andAllSucceed(runs, on: loop).get()
                if timeline {
                    var answered: [(due: NIODeadline, kind: LoadClient.Kind, milliseconds: Double)] = []
                    for client in load { answered += try await client.takeTimeline().get() }
                    printTimeline(answered, start: start)
                }
            }
        } else {
            try await EventLoopFuture.andAllSucceed(load.map { $0.run() }, on: loop).get()
        }
        let phase2Seconds = (ContinuousClock.now - phase2).seconds
        let trackerCPUs = zip(trackers, cpuBefore.trackers).map { Self.cpuSeconds(pid: $0.pid) - $1 }
        let trackerCPU = trackerCPUs.reduce(0, +)
        let benchCPU = Self.cpuSeconds(pid: getpid()) - cpuBefore.bench
        let machine = MachineTime.now().since(machineBefore)
        let peaks = trackers.map { Self.memory(pid: $0.pid) }
        let peak = peaks[0]
        if instances > 1 { byInstance = [:] }
        try await collect(load, seconds: phase2Seconds)
        if let measured = plainResults {
            for kind in LoadClient.Kind.allCases where !measured.samples[kind.rawValue].isEmpty {
                results[kind.name, default: []].append(contentsOf: measured.samples[kind.rawValue])
                phaseOf[kind.name] = phase2Seconds
            }
        }
        let racing: Int? = if rate == nil { nil } else if let plainResults { plainResults.racing } else { try await announces.racingCount(on: loop).get() }

        // Phase 3: the same rounds while other clients log in over and over
        // (new connection, login with the production hash, close): what
        // password hashing does to everyone else's latency.
        var storm: (seconds: Double, logins: [Double], trackerCPU: Double)?
        if stormClients > 0 && stormRounds > 0 && instances == 1 {
            for s in 0..<stormClients {
                let connection = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(60), security: security)
                _ = try await connection.request(.register(Register(user: "storm\(s)", password: "pw-storm\(s)")), timeout: .seconds(120))
                connection.close()
            }
            try await EventLoopFuture.andAllSucceed(load.map { $0.prepare(announcing: false, rounds: stormRounds) }, on: loop).get()
            let stop = StopFlag()
            let cpu = Self.cpuSeconds(pid: tracker.pid)
            let phase3 = ContinuousClock.now
            let logins = try await withThrowingTaskGroup(of: [Double].self) { group in
                for s in 0..<stormClients {
                    group.addTask {
                        var times: [Double] = []
                        while !stop.isSet {
                            let start = ContinuousClock.now
                            let connection = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "tool", timeout: .seconds(60), security: security)
                            let reply = try await connection.request(.login(Login(user: "storm\(s)", password: "pw-storm\(s)", port: 0)), timeout: .seconds(120))
                            connection.close()
                            guard case .loggedIn = reply else { throw ValidationError("storm login failed") }
                            times.append((ContinuousClock.now - start).seconds * 1000)
                        }
                        return times
                    }
                }
                do {
                    try await EventLoopFuture.andAllSucceed(load.map { $0.run() }, on: loop).get()
                } catch {
                    // The storm's tasks stop only on the flag: set it before leaving, or the group waits for ever.
                    stop.set()
                    throw error
                }
                stop.set()
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let seconds = (ContinuousClock.now - phase3).seconds
            storm = (seconds, logins.sorted(), Self.cpuSeconds(pid: tracker.pid) - cpu)
            try await collect(load, seconds: seconds, suffix: " (logins)")
        }
        for client in load { client.close() }
        try? await group.shutdownGracefully()
        for tracker in trackers { tracker.stop() }

        say("")
        say(pad("request", 24) + pad("count", 8) + pad("req/s", 10) + pad("p50 ms", 10) + "p99 ms")
        let names = LoadClient.Kind.allCases.map(\.name) + ["list (logins)", "details (logins)"]
        for name in names {
            guard let samples = results[name]?.sorted(), !samples.isEmpty else { continue }
            let rate = Double(samples.count) / phaseOf[name]!
            say(pad(name, 24) + pad("\(samples.count)", 8) + pad(String(format: "%.0f", rate), 10)
                + pad(String(format: "%.2f", Self.percentile(samples, 0.50)), 10) + String(format: "%.2f", Self.percentile(samples, 0.99)))
        }
        let count = { (names: [String]) in names.reduce(0) { $0 + (results[$1]?.count ?? 0) } }
        let total1 = count(["register", "login"])
        let total2 = count(instances > 1 ? ["list", "details"] : ["announce", "list", "details"])
        if instances > 1 {
            say("")
            say("by instance, phase 2 (list + details rounds, after every announce was listed everywhere):")
            say(pad("instance", 10) + pad("request", 10) + pad("count", 8) + pad("req/s", 10) + pad("p50 ms", 10) + pad("p99 ms", 10) + pad("CPU s", 8) + "peak MiB")
            for k in 0..<instances {
                for name in ["list", "details"] {
                    guard let samples = byInstance[k]?[name]?.sorted(), !samples.isEmpty else { continue }
                    say(pad("\(k + 1)", 10) + pad(name, 10) + pad("\(samples.count)", 8) + pad(String(format: "%.0f", Double(samples.count) / phase2Seconds), 10)
                        + pad(String(format: "%.2f", Self.percentile(samples, 0.50)), 10) + pad(String(format: "%.2f", Self.percentile(samples, 0.99)), 10)
                        + pad(String(format: "%.2f", trackerCPUs[k]), 8) + "\(peaks[k].peak / 1024)")
                }
            }
            say("every instance listed all \(clients) files " + convergence.enumerated().map { String(format: "instance %d: %.2f s", $0.offset + 1, $0.element) }.joined(separator: ", ")
                + " after the announces began; 0 errors (any error ends the benchmark)")
        }
        say("")
        say(String(format: "phase 1 (register + login): %d requests in %.1f s = %.0f req/s", total1, phase1Seconds, Double(total1) / phase1Seconds))
        say(String(format: "phase 2 (%@): %d requests in %.2f s = %.0f req/s", instances > 1 ? "list, details" : "announce, list, details", total2, phase2Seconds, Double(total2) / phase2Seconds)
            + (rate.map { ", offered \($0) req/s on a fixed schedule (open loop; latency from when each request was due)" } ?? ", each client waiting for each reply (closed loop)"))
        say(String(format: "phase 2 CPU: tracker %.2f s, clients %.2f s (%d cores shared by both)", trackerCPU, benchCPU, machine.cores))
        // Time the hypervisor gave to other guests while this one wanted to run:
        // on a shared host it, not the tracker, can set the tail.
        say(String(format: "phase 2 machine: %.0f %% busy, %.1f %% stolen by the host (of %d cores' time)", machine.busyPercent, machine.stealPercent, machine.cores))
        say("tracker peak memory (VmHWM) after phase 2: \(peak.peak / 1024) MiB; resident then: \(peak.resident / 1024) MiB")
        if let racing {
            // Any other error ends the benchmark.
            say("phase 2 errors: 0; \(racing) details about a file whose announce was not answered yet when they were sent got not_found (allowed: requests on different connections are not ordered), counted as answered")
        }
        if let storm {
            let total3 = count(["list (logins)", "details (logins)"])
            say(String(format: "phase 3 (list + details while %d clients log in again and again): %d requests in %.2f s = %.0f req/s; tracker CPU %.2f s",
                       stormClients, total3, storm.seconds, Double(total3) / storm.seconds, storm.trackerCPU))
            if !storm.logins.isEmpty {
                say(String(format: "  %d logins meanwhile (connect + TLS + login, PBKDF2 %d rounds): p50 %.1f ms, max %.1f ms",
                           storm.logins.count, passwordRounds, Self.percentile(storm.logins, 0.5), storm.logins.last!))
            }
        }
    }

    /// Registers and logs in `checker` on `tracker` (as a peer does, with
    /// ``TrackerSession``), then lists the files until `expected` are listed or
    /// `timeout` seconds pass; the names listed last.
    static func waitUntilListed(_ expected: Int, on tracker: TrackerProcess, checker: String, timeout: Double) async throws -> Set<String> {
        let endpoint = Endpoint(host: "127.0.0.1", port: tracker.port)
        try await TrackerSession.register(endpoint: endpoint, trust: tracker.trust, user: checker, password: "pw-\(checker)")
        let session = try await TrackerSession.login(endpoint: endpoint, trust: tracker.trust, user: checker, password: "pw-\(checker)",
                                                     servePort: 0, logger: Logger(label: "shoal-bench"))
        let deadline = ContinuousClock.now + .seconds(timeout)
        var names: Set<String> = []
        repeat {
            names = Set(try await session.list().map(\.name))
            if names.count >= expected { break }
            try await Task.sleep(for: .milliseconds(50))
        } while ContinuousClock.now < deadline
        await session.logout()
        return names
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

    /// Latencies by when the requests were due, in windows of 100 ms.
    func printTimeline(_ answered: [(due: NIODeadline, kind: LoadClient.Kind, milliseconds: Double)], start: NIODeadline) {
        let window: Int64 = 100_000_000
        let byWindow = Dictionary(grouping: answered) { ($0.due - start).nanoseconds / window }
        say("latency by when requests were due (ms; count p50/p99/max per kind):")
        for w in byWindow.keys.sorted() {
            var line = String(format: "  %5.1f s ", Double(w * window) / 1e9)
            for kind in [LoadClient.Kind.announce, .list, .details] {
                let values = byWindow[w]!.filter { $0.kind == kind }.map(\.milliseconds).sorted()
                guard !values.isEmpty else { continue }
                line += String(format: "  %@ %d %.1f/%.1f/%.1f", kind.name, values.count, Self.percentile(values, 0.5), Self.percentile(values, 0.99), values.last!)
            }
            say(line)
        }
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
    func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count + 1), withPad: " ", startingAt: 0) }
}

/// Set once, read from any task.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

/// The order paced requests fall due in: client i's k-th request is due at
/// `start + period × (i / clients + k)` (as ``LoadClient/runPaced(start:period:)``
/// staggers them), so all clients' requests form one sequence, and a tick
/// takes just those due since the last one instead of visiting every client
/// (500 clients every 250 µs is 2 million visits a second, a few percent of
/// the clients' one core in retains and releases).
struct PacedSchedule {
    /// How often the clients send what fell due (and the plain clients read replies).
    static let tick = TimeAmount.microseconds(250)

    let start: NIODeadline
    let period: TimeAmount
    let clients: Int
    private let total: Int
    /// The next request in due order: client `next % clients`, its request `next / clients`.
    private var next = 0

    init(clients: Int, start: NIODeadline, period: TimeAmount, requestsEach: Int) {
        self.clients = clients
        self.start = start
        self.period = period
        self.total = clients * requestsEach
    }

    /// When client `client` (of `count`) has its request number `request` due.
    static func due(start: NIODeadline, period: TimeAmount, client: Int, of count: Int, request: Int) -> NIODeadline {
        start + .nanoseconds(period.nanoseconds * Int64(client) / Int64(count) + period.nanoseconds * Int64(request))
    }

    /// Calls `body` with each client whose next request fell due by `now`, and when, in due order.
    mutating func takeDue(by now: NIODeadline, _ body: (_ client: Int, _ due: NIODeadline) throws -> Void) rethrows {
        while next < total {
            let client = next % clients
            let due = Self.due(start: start, period: period, client: client, of: clients, request: next / clients)
            guard due <= now else { return }
            try body(client, due)
            next += 1
        }
    }
}
