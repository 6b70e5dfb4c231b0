#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import ShoalCore
import ShoalLab
import ShoalSamples

/// `shoal get` from four seeders over shaped links: each peer on its own
/// test host (network namespace), each seeder's link limited in rate and
/// delayed, some lossy; the links are checked with iperf3 and ping first.
///
/// The bytes received per byte of file are printed twice: as the
/// downloader's interface counted them (`rx_bytes`), and past the lab's
/// loss. The lab drops a lossy link's packets where they enter the
/// downloader's namespace, after `rx_bytes` counted them, while a real lossy
/// link loses them before the receiver's interface; the second figure
/// subtracts what the lab's DROP rules dropped (their byte counters plus the
/// 14-byte Ethernet header per packet). A second line per run breaks the
/// received bytes down by sender (see ``NetworkLab/receiveCounters(of:)``).
struct LinksBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "links",
        abstract: "Time shoal get from 4 seeders on shaped links (network namespaces, tbf, NFQUEUE delay, loss). Needs root.",
        discussion: """
        Topology: a tracker host, 4 seeder hosts and a downloader host, joined by one bridge (198.18.0.0/24). \
        Scenarios: hetero = 200/100/50/20 Mbit/s at 5/10/20/40 ms one-way, 1 % loss on the slowest; \
        equal = 4 × 50 Mbit/s at 20 ms; one-bad = 3 × 100 Mbit/s at 10 ms plus 100 Mbit/s at 200 ms with 20 % loss. \
        Installs iptables, iperf3, iputils-ping and libnetfilter-queue-dev with apt-get when missing and compiles \
        Benchmarks/LinkDelayer/link-delayer.c on first use. Every timed run starts fresh seeders and writes and \
        deletes 1.5 GiB first (see FACTS.md); the timed part is the whole `shoal get` process. rx/size is printed as \
        the downloader's interface counted it and past the lab's loss (which drops packets after the interface \
        counted them); a second line per run gives each seeder's bytes per byte it served and its retransmissions.
        """)

    @Option(help: "Scenarios, comma-separated: hetero, equal, one-bad.") var scenarios = "hetero,equal,one-bad"
    @Option(help: "Files, comma-separated: random, text.") var files = "random,text"
    @Option(name: .customLong("size-mib"), help: "Size of each file in MiB.") var sizeMiB = 256
    @Option(help: "Timed runs of each scenario and file (every run is listed).") var runs = 3
    @Option(help: "The shoal binary (default: next to this one).") var shoal: String?
    @Option(help: "Work folder (default: a temporary one, removed afterwards).") var workDir: String?
    @Option(name: .customLong("delayer-source"), help: "link-delayer.c (default: the one in this checkout).") var delayerSource: String?
    @Option(name: .customLong("check-seconds"), help: "Seconds of iperf3 per link check (0 skips the checks).") var checkSeconds = 3
    @OptionGroup var limits: RateLimitOptions
    @Option(name: .customLong("get-log"), help: "Write each shoal get's trace log (every request and chunk, stamped to the microsecond, framed by the process's start and end) to PREFIX-FILE-TIME.log.") var getLog: String?

    struct Scenario {
        let name: String
        let links: [LinkShape]
        /// The links a download should get nearly all of (one-bad: the three good ones).
        let good: [Int]
        var sumMbit: Double { links.compactMap(\.rateMbit).reduce(0, +) }
        var goodMbit: Double { good.compactMap { links[$0].rateMbit }.reduce(0, +) }
    }

    static let allScenarios: [Scenario] = [
        Scenario(name: "hetero", links: [LinkShape(rateMbit: 200, delayMs: 5), LinkShape(rateMbit: 100, delayMs: 10),
                                         LinkShape(rateMbit: 50, delayMs: 20), LinkShape(rateMbit: 20, delayMs: 40, loss: 0.01)],
                 good: [0, 1, 2, 3]),
        Scenario(name: "equal", links: Array(repeating: LinkShape(rateMbit: 50, delayMs: 20), count: 4), good: [0, 1, 2, 3]),
        Scenario(name: "one-bad", links: Array(repeating: LinkShape(rateMbit: 100, delayMs: 10), count: 3)
                    + [LinkShape(rateMbit: 100, delayMs: 200, loss: 0.2)], good: [0, 1, 2]),
    ]

    static let seeders = ["seeder1", "seeder2", "seeder3", "seeder4"]

    func run() async throws {
        let chosen = try scenarios.split(separator: ",").map { name in
            guard let scenario = Self.allScenarios.first(where: { $0.name == name }) else {
                throw ValidationError("unknown scenario \(name); use hetero, equal or one-bad")
            }
            return scenario
        }
        let kinds = try files.split(separator: ",").map { kind -> String in
            guard kind == "random" || kind == "text" else { throw ValidationError("unknown file kind \(kind); use random or text") }
            return String(kind)
        }
        guard runs > 0, sizeMiB > 0 else { throw ValidationError("--runs and --size-mib must be positive") }
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let binary = shoal ?? here.appendingPathComponent("shoal").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ValidationError("no shoal binary at \(binary); build it (swift build -c release) or pass --shoal")
        }
        guard geteuid() == 0 else { throw LabError.notRoot(uid: geteuid()) }

        try LabPackages.install(["iproute2"] + LinkDelayer.packages + LinkCheck.packages, log: say)
        let delayer = try LinkDelayer.build(source: delayerSource ?? LinkDelayer.defaultSource,
                                            output: here.appendingPathComponent("link-delayer").path)

        let root = workDir ?? NSTemporaryDirectory() + "shoal-links-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if workDir == nil { try? FileManager.default.removeItem(atPath: root) } }
        // Every shoal process (register, seed, get) reads its password from here.
        setenv("SHOAL_PASSWORD", "pw", 1)
        // And pins the tracker's certificate here on first use (not in ~/.shoal: each run makes a new one).
        setenv("SHOAL_KNOWN_TRACKERS", root + "/known_trackers", 1)
        try? FileManager.default.removeItem(atPath: root + "/known_trackers")

        let lab = try NetworkLab(hosts: ["tracker"] + Self.seeders + ["downloader"])
        defer { lab.teardown() }
        lab.delayer = delayer
        say("Shoal over shaped links: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(sizeMiB) MiB files; MB = 10^6 bytes; "
            + "hosts \(lab.hosts.map { "\($0.name) \($0.address)" }.joined(separator: ", "))")

        let trackerHost = try lab.address(of: "tracker")
        let trackerAddress = "\(trackerHost):6969"
        let tracker = try LabProcess(try lab.prefix(for: "tracker") + [binary, "tracker", "--host", trackerHost, "--port", "6969",
                                     "--db", root + "/tracker.sqlite", "--password-rounds", "1000", "--log-level", "warning"])
        defer { tracker.stop() }
        guard let listening = tracker.firstLine(timeout: 30), listening.hasPrefix("listening on") else {
            throw ValidationError("the tracker did not start on \(trackerAddress): \(tracker.errors)")
        }
        for user in Self.seeders + ["downloader"] {
            try lab.run(on: user, [binary, "register", "--user", user, "--tracker", trackerAddress])
        }

        // The files, and each seeder's folder with its own link to one.
        var sources: [(kind: String, name: String)] = []
        for kind in kinds {
            let name = kind == "random" ? "random.bin" : "text.log"
            let path = root + "/" + name
            say("generating \(sizeMiB) MiB \(kind) file ...")
            if kind == "random" { try SampleData.writeRandom(path: path, size: sizeMiB << 20) } else { try SampleData.writeLogText(path: path, size: sizeMiB << 20) }
            for seeder in Self.seeders {
                let folder = root + "/\(seeder)-\(kind)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                if link(path, folder + "/" + name) != 0 { try FileManager.default.copyItem(atPath: path, toPath: folder + "/" + name) }
            }
            sources.append((kind, name))
        }

        var summary: [String] = []
        for scenario in chosen {
            var shapes: [String: LinkShape] = [:]
            for (i, seeder) in Self.seeders.enumerated() { shapes[seeder] = scenario.links[i] }
            try lab.unshapeAll()
            try lab.shape(shapes)
            say("")
            say("\(scenario.name): " + Self.seeders.enumerated().map { "\($0.element) \(scenario.links[$0.offset])" }.joined(separator: "; "))
            if checkSeconds > 0 { try check(lab: lab, scenario: scenario) }
            for source in sources {
                var results: [RunResult] = []
                for run in 1...runs {
                    let result = try timedRun(lab: lab, binary: binary, root: root, trackerAddress: trackerAddress, kind: source.kind, name: source.name)
                    results.append(result)
                    say(line(scenario: scenario, kind: source.kind, run: run, result))
                }
                summary.append(summaryRow(scenario: scenario, kind: source.kind, results))
            }
        }
        say("")
        say(row(Self.summaryHeader))
        for row in summary { say(row) }
    }

    // MARK: Checks

    /// iperf3 from each seeder to the downloader, ping from the downloader to each seeder.
    func check(lab: NetworkLab, scenario: Scenario) throws {
        for (i, seeder) in Self.seeders.enumerated() {
            let shape = scenario.links[i]
            let cpuBefore = lab.delayerCPUSeconds()
            let start = Date()
            let mbit = try LinkCheck.throughput(in: lab, from: seeder, to: "downloader", seconds: checkSeconds)
            let elapsed = Date().timeIntervalSince(start)
            let cpuAfter = lab.delayerCPUSeconds()
            let delayerCPU = cpuAfter.reduce(0.0) { $0 + $1.value - (cpuBefore[$1.key] ?? 0) }
            let ping = try LinkCheck.roundTrip(in: lab, from: "downloader", to: seeder, count: 10)
            let rate = shape.rateMbit ?? .nan
            // What TCP/IP costs on the link: the floor of a download's rx/size.
            let overhead = try LinkCheck.receiveOverhead(in: lab, from: seeder, to: "downloader", bytes: Int((min(rate, mbit) * 1e6 / 8 * 4).rounded()))
            say("  check " + pad(seeder, 9) + String(format: "iperf3 %6.1f Mbit/s (%3.0f %% of %3.0f), rx %5.3f × payload   ping %6.1f ms avg, %6.1f min (2 × delay = %5.1f), %d/10 lost   delayers %4.1f %% of a core",
                       mbit, mbit / rate * 100, rate, overhead, ping.average, ping.min, 2 * shape.delayMs, ping.lost, delayerCPU / elapsed * 100))
        }
    }

    // MARK: Runs

    struct RunResult {
        let seconds: Double
        let bytes: Double
        let rxBytes: Double
        let chunks: [String: Int]
        let insideSeconds: Double
        /// What `shoal get` counted on the wire (frames, compressed where they were), for the rate limit.
        let wireBytes: Double
        let delayerCPU: Double
        /// What the downloader's interface received, by sender, and what the lab dropped of it after counting it.
        let received: NetworkLab.ReceiveCounters
        /// File bytes each seeder served (verified chunks).
        let served: [String: Double]
        /// Each seeder's TCP counters over the run, and the downloader's.
        let tcp: [String: [String: UInt64]]
        var mbps: Double { bytes / seconds / 1e6 }
        /// rx_bytes less what the lab's loss rules (and its delay queues) dropped after the interface counted them:
        /// what the interface would count on a real lossy link, which loses packets before they reach it.
        var rxPastLab: Double { rxBytes - Double(received.labDropped.bytes) }
    }

    /// The TCP counters read on each host after a run, for the rx breakdown.
    static let seederTCP = ["TcpRetransSegs", "TcpExtTCPLossProbes", "TcpExtTCPSpuriousRTOs", "TcpExtTCPTimeouts"]
    static let downloaderTCP = ["TcpExtTCPDSACKOldSent", "TcpExtTCPDSACKOfoSent", "TcpInSegs"]

    /// Absolute values of the named counters in the host's namespace (`nstat`, leaving its history alone).
    func tcpCounters(lab: NetworkLab, host: String, _ names: [String]) -> [String: UInt64] {
        guard let text = try? lab.run(on: host, ["nstat", "-asz"] + names) else { return [:] }
        var values: [String: UInt64] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let words = line.split(whereSeparator: \.isWhitespace)
            if words.count >= 2, let value = UInt64(words[1]) { values[String(words[0])] = value }
        }
        return values
    }

    func allTCPCounters(lab: NetworkLab) -> [String: [String: UInt64]] {
        var all: [String: [String: UInt64]] = [:]
        for seeder in Self.seeders { all[seeder] = tcpCounters(lab: lab, host: seeder, Self.seederTCP) }
        all["downloader"] = tcpCounters(lab: lab, host: "downloader", Self.downloaderTCP)
        return all
    }

    /// Fresh seeders, 1.5 GiB written and deleted, then one timed `shoal get`.
    func timedRun(lab: NetworkLab, binary: String, root: String, trackerAddress: String, kind: String, name: String) throws -> RunResult {
        var seeders: [LabProcess] = []
        defer { for seeder in seeders { seeder.stop() } }
        for seeder in Self.seeders {
            let process = try LabProcess(try lab.prefix(for: seeder) + [binary, "seed", "--user", seeder, "--dir", root + "/\(seeder)-\(kind)",
                                                                        "--tracker", trackerAddress, "--log-level", "warning"]
                                                                        + limits.seedArguments)
            seeders.append(process)
            // The first start hashes the file and prepares its chunks; later ones load that.
            guard let ready = process.firstLine(timeout: 600), ready.hasPrefix("serving on") else {
                throw ValidationError("\(seeder) did not start serving: \(process.errors)")
            }
        }
        let folder = root + "/downloader"
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Memory handed back to the host is slow to write the first time (FACTS.md): touch 1.5 GiB first.
        try LabCommand.run(["sh", "-c", "dd if=/dev/zero of='\(root)/warm' bs=1M count=1536 status=none && rm '\(root)/warm' && sync"], timeout: 300)
        let rxBefore = try lab.receivedBytes(of: "downloader")
        let countersBefore = try lab.receiveCounters(of: "downloader")
        let tcpBefore = allTCPCounters(lab: lab)
        let cpuBefore = lab.delayerCPUSeconds()
        let start = Date()
        let get = try LabCommand.runAllowingFailure(try lab.prefix(for: "downloader") + [binary, "get", name, "--user", "downloader",
                                                     "--dir", folder, "--tracker", trackerAddress, "--json",
                                                     "--log-level", getLog == nil ? "warning" : "trace"]
                                                     + limits.getArguments, timeout: 1800)
        let end = Date()
        let seconds = end.timeIntervalSince(start)
        if let getLog {
            // A trace stamps its lines in Unix seconds: the process's start and end, on the same clock, frame them.
            let framed = String(format: "%.6f started shoal get\n", start.timeIntervalSince1970) + get.stderr
                + String(format: "%.6f shoal get ended\n", end.timeIntervalSince1970)
            try? framed.write(toFile: "\(getLog)-\(name)-\(Int(end.timeIntervalSince1970)).log", atomically: true, encoding: .utf8)
        }
        let rxAfter = try lab.receivedBytes(of: "downloader")
        let countersAfter = try lab.receiveCounters(of: "downloader")
        let tcpAfter = allTCPCounters(lab: lab)
        let cpuAfter = lab.delayerCPUSeconds()
        guard get.status == 0, let json = try? JSONSerialization.jsonObject(with: Data(get.stdout.utf8)) as? [String: Any] else {
            throw ValidationError("shoal get failed (status \(get.status)): \(get.stderr.suffix(2000))")
        }
        try? FileManager.default.removeItem(atPath: folder)
        var chunks: [String: Int] = [:]
        var served: [String: Double] = [:]
        for holder in json["holders"] as? [[String: Any]] ?? [] {
            guard let user = holder["user"] as? String else { continue }
            chunks[user] = holder["chunks"] as? Int ?? 0
            served[user] = (holder["bytes"] as? NSNumber)?.doubleValue ?? 0
        }
        var received = NetworkLab.ReceiveCounters()
        for (sender, traffic) in countersAfter.bySender { received.bySender[sender] = traffic - (countersBefore.bySender[sender] ?? .init()) }
        received.labDropped = countersAfter.labDropped - countersBefore.labDropped
        received.delayerDropped = countersAfter.delayerDropped &- countersBefore.delayerDropped
        var tcp: [String: [String: UInt64]] = [:]
        for (host, values) in tcpAfter {
            tcp[host] = values.reduce(into: [:]) { $0[$1.key] = $1.value &- (tcpBefore[host]?[$1.key] ?? 0) }
        }
        let size = (json["size"] as? Double) ?? Double(json["size"] as? Int ?? 0)
        return RunResult(seconds: seconds, bytes: size, rxBytes: Double(rxAfter - rxBefore), chunks: chunks,
                         insideSeconds: json["seconds"] as? Double ?? 0,
                         wireBytes: (json["wireBytes"] as? Double) ?? Double(json["wireBytes"] as? Int ?? 0),
                         delayerCPU: cpuAfter.reduce(0.0) { $0 + $1.value - (cpuBefore[$1.key] ?? 0) },
                         received: received, served: served, tcp: tcp)
    }

    func chunkList(_ chunks: [String: Int]) -> String { Self.seeders.map { "\(chunks[$0] ?? 0)" }.joined(separator: "/") }

    func line(scenario: Scenario, kind: String, run: Int, _ r: RunResult) -> String {
        let linkMBps = scenario.sumMbit / 8
        var text = pad(scenario.name, 8) + pad(kind, 7) + "run \(run)/\(runs)"
        text += String(format: "  %6.1f MB/s  %4.1f %% of %3.0f Mbit/s   wire %3.0f %% of it, rx %5.3f × size (%5.3f past the lab's loss)   chunks %@   (get %.2f s, download %.2f s, delayers %.0f %% of a core)",
                       r.mbps, r.mbps / linkMBps * 100, scenario.sumMbit, r.rxBytes / r.seconds / 1e6 / linkMBps * 100, r.rxBytes / r.bytes,
                       r.rxPastLab / r.bytes, chunkList(r.chunks), r.seconds, r.insideSeconds, r.delayerCPU / r.seconds * 100)
        if scenario.good.count < scenario.links.count {
            text += String(format: "   good links: %3.0f %% of %3.0f Mbit/s", r.mbps / (scenario.goodMbit / 8) * 100, scenario.goodMbit)
        }
        text += limits(r)
        return text + "\n" + breakdown(r)
    }

    /// With rate limits: the download's rate on the wire (while it ran)
    /// against `--max-download`, and what each seeder served against `--max-upload`.
    func limits(_ r: RunResult) -> String {
        var text = ""
        if let limit = limits.download, r.insideSeconds > 0 {
            let achieved = r.wireBytes / r.insideSeconds
            text += String(format: "   max-download %@: %.3f MB/s on the wire, %.1f %% of it", "\(limit)" as NSString, achieved / 1e6,
                           achieved / limit.bytesPerSecond * 100)
        }
        if let limit = limits.upload, r.insideSeconds > 0 {
            let each = Self.seeders.map { String(format: "%.3f", (r.served[$0] ?? 0) / r.insideSeconds / 1e6) }.joined(separator: "/")
            // File bytes: the limit counts frames on the wire, 52 bytes more per chunk where chunks travel stored.
            text += String(format: "   max-upload %@ each: served %@ MB/s of file", "\(limit)" as NSString, each as NSString)
        }
        return text
    }

    /// Where the received bytes came from: per seeder, what its address
    /// sent to the downloader's interface per byte of file it served, and
    /// its TCP retransmissions; then the rest (tracker, lab drops).
    func breakdown(_ r: RunResult) -> String {
        var parts: [String] = []
        for seeder in Self.seeders {
            let traffic = r.received.bySender[seeder] ?? .init()
            let served = r.served[seeder] ?? 0
            let counters = r.tcp[seeder] ?? [:]
            parts.append(String(format: "%@ %.2f MB %@, %d pkts, retrans %d (probes %d, RTOs %d)", seeder, Double(traffic.bytes) / 1e6,
                                served > 0 ? String(format: "%.4f × served", Double(traffic.bytes) / served) : "(served 0)",
                                Int(traffic.packets), Int(counters["TcpRetransSegs"] ?? 0), Int(counters["TcpExtTCPLossProbes"] ?? 0),
                                Int(counters["TcpExtTCPTimeouts"] ?? 0)))
        }
        let fromSeeders = Self.seeders.reduce(0.0) { $0 + Double(r.received.bySender[$1]?.bytes ?? 0) }
        let tracker = Double(r.received.bySender["tracker"]?.bytes ?? 0)
        let other = r.rxBytes - fromSeeders - tracker
        let d = r.tcp["downloader"] ?? [:]
        return "      rx: " + parts.joined(separator: "; ")
            + String(format: "; tracker %.3f MB; other %.3f MB; lab dropped %d pkts (%.3f MB), delay queues dropped %d; downloader D-SACKs sent %d",
                     tracker / 1e6, other / 1e6, Int(r.received.labDropped.packets), Double(r.received.labDropped.bytes) / 1e6,
                     Int(r.received.delayerDropped), Int((d["TcpExtTCPDSACKOldSent"] ?? 0) + (d["TcpExtTCPDSACKOfoSent"] ?? 0)))
    }

    static let summaryHeader = ["scenario", "file", "best MB/s", "median", "% links", "good links", "wire %", "rx/size", "past loss", "chunks per seeder (mean)", "every run, MB/s"]
    static let summaryWidths = [8, 7, 10, 8, 8, 11, 7, 8, 10, 25, 0]

    func summaryRow(scenario: Scenario, kind: String, _ results: [RunResult]) -> String {
        let rates = results.map(\.mbps).sorted()
        let median = rates[rates.count / 2]
        let linkMBps = scenario.sumMbit / 8
        let good = scenario.good.count < scenario.links.count ? String(format: "%.0f %%", median / (scenario.goodMbit / 8) * 100) : "-"
        let wire = results.map { $0.rxBytes / $0.seconds / 1e6 / linkMBps * 100 }.sorted()[results.count / 2]
        let rx = results.map { $0.rxBytes / $0.bytes }.reduce(0, +) / Double(results.count)
        let rxPast = results.map { $0.rxPastLab / $0.bytes }.reduce(0, +) / Double(results.count)
        let meanChunks = Self.seeders.map { seeder in
            String(Int((Double(results.map { $0.chunks[seeder] ?? 0 }.reduce(0, +)) / Double(results.count)).rounded()))
        }.joined(separator: "/")
        return row([scenario.name, kind, String(format: "%.1f", rates.last!), String(format: "%.1f", median),
                    String(format: "%.0f %%", median / linkMBps * 100), good, String(format: "%.0f %%", wire), String(format: "%.3f", rx), String(format: "%.3f", rxPast),
                    meanChunks, results.map { String(format: "%.1f", $0.mbps) }.joined(separator: ", ")])
    }

    func row(_ cells: [String]) -> String {
        zip(cells, Self.summaryWidths).map { $1 > 0 ? pad($0, $1) : $0 }.joined()
    }

    func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
}

/// A long-running process (tracker, seeder) started with an argv, whose
/// first stdout line can be awaited with a deadline.
final class LabProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var firstLineText: String?
    private var errorText = ""
    private let arrived = DispatchSemaphore(value: 0)

    init(_ argv: [String]) throws {
        guard let executable = argv.first.flatMap(LabCommand.find) else { throw ValidationError("cannot find \(argv.first ?? "")") }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(argv.dropFirst())
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let reader = out.fileHandleForReading
        Thread { [self] in
            var data = Data()
            var told = false
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                data.append(chunk)
                if !told, let newline = data.firstIndex(of: 0x0A) {
                    lock.withLock { firstLineText = String(decoding: data[..<newline], as: UTF8.self) }
                    told = true
                    arrived.signal()
                }
                if told { data.removeAll(keepingCapacity: true) }
            }
            if !told { arrived.signal() }
        }.start()
        let errors = err.fileHandleForReading
        Thread { [self] in
            while true {
                let chunk = errors.availableData
                if chunk.isEmpty { break }
                lock.withLock { errorText = String((errorText + String(decoding: chunk, as: UTF8.self)).suffix(4000)) }
            }
        }.start()
    }

    /// The first stdout line, or nil if none came within `timeout` seconds (or the process ended).
    func firstLine(timeout: Double) -> String? {
        _ = arrived.wait(timeout: .now() + timeout)
        return lock.withLock { firstLineText }
    }

    var errors: String { lock.withLock { errorText } }

    /// SIGTERM, then SIGKILL after 10 s.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
