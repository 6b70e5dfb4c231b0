#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Test hosts in Linux network namespaces, joined by one switch.
///
/// A lab owns one "switch" namespace holding a bridge (`br0`), and one
/// namespace per host. Each host has one interface, `eth0`, with an address
/// in 198.18.0.0/24 (198.18.0.1 for the first host, .2 for the next ...;
/// .250 to .254 are never given, so they can stand for a host that is not
/// there), joined by a veth pair to the bridge port `p<N>` in the switch
/// namespace. Nothing is in the machine's own namespace, and no address
/// outside 198.18.0.0/15 is ever configured, so lab traffic cannot leave the
/// lab.
///
/// Names are `shoal-<pid>-<n>-<host>` (and `shoal-<pid>-<n>-sw`), so labs
/// of parallel test processes, and several labs in one process, never
/// collide. Creating a lab first sweeps away the namespaces of earlier labs
/// whose process is dead (a test that crashed), with whatever still runs in
/// them.
///
/// What a lab can do to a host's link:
/// - ``setLink(_:up:)``: take the switch's end down (mid-transfer link loss) or up again;
/// - ``shape(_:_:)``: rate (a tbf qdisc on each end of the veth, so both
///   directions), one-way delay and random loss, as a ``LinkShape``.
///   Loss and delay are applied where packets enter a host's namespace
///   (`iptables` in `raw` and `mangle` `PREROUTING`): a host drops and delays
///   what arrives over its own link, and what arrives from a shaped host, as
///   that host's link would have. Delay needs the `link-delayer` program
///   (``delayer``; see ``LinkDelayer``), one per namespace, fed by NFQUEUE:
///   this kernel has no netem. Delaying on ingress rather than egress keeps
///   the held packets off the sender's socket accounting (TCP small queues),
///   so a long delay does not throttle the sender the way a real path would
///   not. A shaped link carries only MTU-sized packets (its veth's GSO size
///   is lowered to 1500), so tbf and the delay see real packets.
///
/// ``teardown()`` kills every process still running in the lab's namespaces
/// and deletes them; it is idempotent. Call it from a `defer` right after
/// creating the lab.
public final class NetworkLab: @unchecked Sendable {
    /// One test host: its namespace and its address.
    public struct Host: Sendable, Hashable {
        /// The name given to ``NetworkLab/init(hosts:)``.
        public let name: String
        /// Its network namespace (`ip netns` name).
        public let namespace: String
        /// Its IPv4 address, in 198.18.0.0/24.
        public let address: String
        /// Its interface inside its namespace.
        public let interface: String
        /// The bridge port of its link, in the switch namespace.
        public let switchPort: String
        let index: Int
    }

    /// The most hosts one lab holds (addresses .1 to .200).
    public static let maxHosts = 200
    /// An address in the lab's subnet that no host ever has.
    public static let unusedAddress = "198.18.0.250"
    /// The prefix of every namespace a lab makes.
    static let namePrefix = "shoal-"

    /// `shoal-<pid>-<n>`: the start of this lab's namespace names.
    public let id: String
    /// The namespace holding the bridge.
    public let switchNamespace: String
    /// The hosts, in the order given.
    public let hosts: [Host]
    /// The compiled `link-delayer`, needed by shapes with a delay.
    public var delayer: String? {
        get { lock.withLock { delayerPath } }
        set { lock.withLock { delayerPath = newValue } }
    }

    private let ip: String
    private let lock = NSLock()
    private var delayerPath: String?
    private var shapes: [String: LinkShape] = [:]
    private var delayers: [String: Process] = [:]
    private var tornDown = false
    nonisolated(unsafe) private static var counter = 0
    private static let counterLock = NSLock()

    /// Builds a lab with one host per name (1 to 12 characters a-z, 0-9).
    ///
    /// Throws ``LabError/notRoot(uid:)`` when not root and
    /// ``LabError/missingTool(tool:package:)`` without `ip`; whatever is made
    /// before a later step fails is torn down again.
    public init(hosts names: [String]) throws {
        let uid = geteuid()
        guard uid == 0 else { throw LabError.notRoot(uid: uid) }
        ip = try LabCommand.require("ip", package: "iproute2")
        guard names.count <= Self.maxHosts else { throw LabError.tooManyHosts(names.count) }
        for name in names {
            let valid = !name.isEmpty && name.count <= 12 && name.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
            guard valid, names.filter({ $0 == name }).count == 1 else { throw LabError.badHostName(name) }
        }
        let n = Self.counterLock.withLock { Self.counter += 1; return Self.counter }
        let id = "\(Self.namePrefix)\(getpid())-\(n)"
        self.id = id
        switchNamespace = id + "-sw"
        hosts = names.enumerated().map { index, name in
            Host(name: name, namespace: "\(id)-\(name)", address: "198.18.0.\(index + 1)", interface: "eth0",
                 switchPort: "p\(index + 1)", index: index)
        }
        Self.sweepStale(ip: ip)
        do {
            try build()
        } catch {
            teardown()
            throw error
        }
    }

    deinit { teardown() }

    private func build() throws {
        try LabCommand.run([ip, "netns", "add", switchNamespace])
        try LabCommand.run([ip, "-n", switchNamespace, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"])
        try LabCommand.run([ip, "-n", switchNamespace, "link", "set", "br0", "up"])
        for host in hosts {
            try LabCommand.run([ip, "netns", "add", host.namespace])
            try LabCommand.run([ip, "-n", switchNamespace, "link", "add", host.switchPort, "type", "veth",
                                "peer", "name", host.interface, "netns", host.namespace])
            try LabCommand.run([ip, "-n", switchNamespace, "link", "set", host.switchPort, "master", "br0", "up"])
            try LabCommand.run([ip, "-n", host.namespace, "link", "set", "lo", "up"])
            try LabCommand.run([ip, "-n", host.namespace, "addr", "add", host.address + "/24", "dev", host.interface])
            try LabCommand.run([ip, "-n", host.namespace, "link", "set", host.interface, "up"])
        }
    }

    // MARK: Hosts

    /// The host named `name`.
    public func host(_ name: String) throws -> Host {
        guard let host = hosts.first(where: { $0.name == name }) else { throw LabError.unknownHost(name) }
        return host
    }

    /// The IPv4 address of the host named `name`.
    public func address(of name: String) throws -> String { try host(name).address }

    /// The argv prefix that runs a command inside the host's namespace: `ip netns exec NS`.
    /// `ip netns exec` execs the command, so the process keeps the pid it was started with.
    public func prefix(for name: String) throws -> [String] { [ip, "netns", "exec", try host(name).namespace] }

    /// Runs `command` inside the host's namespace and returns its stdout (bounded by `timeout` seconds).
    @discardableResult
    public func run(on name: String, _ command: [String], timeout: Double = 30) throws -> String {
        try LabCommand.run(try prefix(for: name) + command, timeout: timeout)
    }

    /// Bytes received so far on the host's interface (its `rx_bytes`).
    public func receivedBytes(of name: String) throws -> UInt64 {
        let host = try host(name)
        // `ip netns exec` mounts the namespace's own /sys.
        let text = try run(on: name, ["cat", "/sys/class/net/\(host.interface)/statistics/rx_bytes"])
        guard let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw LabError.unreadableOutput(command: ["cat", "rx_bytes"], output: text)
        }
        return value
    }

    /// Packets and their bytes as a host's interface counts them (the
    /// 14-byte Ethernet header included, as in `rx_bytes`).
    public struct Traffic: Sendable, Equatable {
        public var packets: UInt64 = 0
        public var bytes: UInt64 = 0
        public init(packets: UInt64 = 0, bytes: UInt64 = 0) {
            self.packets = packets
            self.bytes = bytes
        }
        public static func - (a: Traffic, b: Traffic) -> Traffic { Traffic(packets: a.packets &- b.packets, bytes: a.bytes &- b.bytes) }
        public static func + (a: Traffic, b: Traffic) -> Traffic { Traffic(packets: a.packets + b.packets, bytes: a.bytes + b.bytes) }
    }

    /// What a host has received on its interface since its links were last
    /// shaped, by sender, and what of it the lab itself dropped after the
    /// interface had counted it.
    ///
    /// The lab drops where packets enter a host (`raw PREROUTING`), after
    /// `rx_bytes` has counted them; a real lossy link loses a packet before
    /// the receiver's interface sees it. So `rx_bytes` minus ``labDropped``
    /// is what the host's interface would have counted on such a link.
    public struct ReceiveCounters: Sendable, Equatable {
        /// By sender host name: everything that came from its address.
        public var bySender: [String: Traffic] = [:]
        /// Dropped by the lab's loss rules (``LinkShape/loss``).
        public var labDropped = Traffic()
        /// Dropped by the kernel's NFQUEUE queues of the host's delayer (full
        /// queue or socket buffer): also after the interface counted them.
        public var delayerDropped: UInt64 = 0
        public init() {}
    }

    /// The host's ``ReceiveCounters``: read from the counters of the rules
    /// ``shape(_:)`` installs (needs a shaped lab, so that `iptables` is
    /// there) and from `/proc/net/netfilter/nfnetlink_queue`.
    public func receiveCounters(of name: String) throws -> ReceiveCounters {
        let host = try host(name)
        let iptables = try LabCommand.require("iptables", package: "iptables")
        let listing = try run(on: name, [iptables, "-w", "5", "-t", "raw", "-S", "PREROUTING", "-v"])
        var counters = Self.receiveCounters(rules: listing, of: host, senders: hosts)
        // Fields: queue, port id, waiting, copy mode, copy range, dropped (queue full), dropped (user), last id, 1.
        let queues = (try? run(on: name, ["cat", "/proc/net/netfilter/nfnetlink_queue"])) ?? ""
        for line in queues.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: \.isWhitespace).compactMap { UInt64($0) }
            if fields.count >= 7 { counters.delayerDropped += fields[5] + fields[6] }
        }
        return counters
    }

    /// The ``ReceiveCounters`` in `rules`, the output of `iptables -t raw -S
    /// PREROUTING -v` in `host`'s namespace: the counting rules (no target,
    /// `-s` a sender's address) by sender, the DROP rules as the lab's loss.
    /// iptables counts IP bytes; the interface adds the 14-byte Ethernet
    /// header of each packet.
    static func receiveCounters(rules: String, of host: Host, senders: [Host]) -> ReceiveCounters {
        var counters = ReceiveCounters()
        for line in rules.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ").map(String.init)
            guard words.first == "-A", let c = words.firstIndex(of: "-c"), c + 2 < words.count,
                  let packets = UInt64(words[c + 1]), let ipBytes = UInt64(words[c + 2]) else { continue }
            let traffic = Traffic(packets: packets, bytes: ipBytes + 14 * packets)
            if words.contains("DROP") {
                counters.labDropped = counters.labDropped + traffic
            } else if !words.contains("-j"), let s = words.firstIndex(of: "-s"), s + 1 < words.count,
                      let sender = senders.first(where: { $0.address + "/32" == words[s + 1] }), sender != host {
                counters.bySender[sender.name, default: Traffic()] = counters.bySender[sender.name, default: Traffic()] + traffic
            }
        }
        return counters
    }

    // MARK: Links

    /// Takes the host's link down (its bridge port, so the host sees its
    /// carrier go) or brings it up again. Packets in flight are lost;
    /// connections stay open on both sides until their own timeouts.
    public func setLink(_ name: String, up: Bool) throws {
        let host = try host(name)
        try LabCommand.run([ip, "-n", switchNamespace, "link", "set", host.switchPort, up ? "up" : "down"])
    }

    /// Shapes the host's link as `shape` (replacing any earlier shape of it).
    public func shape(_ name: String, _ shape: LinkShape) throws {
        try self.shape([name: shape])
    }

    /// Shapes several links at once (replacing their earlier shapes); every
    /// link not named keeps its shape.
    public func shape(_ changes: [String: LinkShape]) throws {
        for (name, shape) in changes {
            _ = try host(name)
            if let rate = shape.rateMbit, !(rate > 0) { throw LabError.badShape(host: name, reason: "rate \(rate) Mbit/s is not positive") }
            if !(shape.delayMs >= 0 && shape.delayMs <= 10_000) { throw LabError.badShape(host: name, reason: "delay \(shape.delayMs) ms is not in 0 ... 10000") }
            if !(shape.loss >= 0 && shape.loss < 1) { throw LabError.badShape(host: name, reason: "loss \(shape.loss) is not in 0 ..< 1") }
        }
        let all = lock.withLock {
            for (name, shape) in changes { shapes[name] = shape }
            return shapes
        }
        try apply(all)
    }

    /// Removes every shape: links back to the bridge's full speed.
    public func unshapeAll() throws {
        lock.withLock { shapes = [:] }
        try apply([:])
    }

    /// The current shape of each shaped host.
    public var currentShapes: [String: LinkShape] { lock.withLock { shapes } }

    /// CPU seconds (user + system) each running delayer has used, by host name.
    public func delayerCPUSeconds() -> [String: Double] {
        let running = lock.withLock { delayers }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var result: [String: Double] = [:]
        for (name, process) in running where process.isRunning {
            guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after "comm)": state is field 3, utime 14, stime 15.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
            result[name] = (user + system) / ticks
        }
        return result
    }

    /// Puts every link in the shape `shapes` gives it (unnamed: unshaped).
    private func apply(_ shapes: [String: LinkShape]) throws {
        let needsDelay = shapes.filter { $0.value.delayMs > 0 }
        let needsFilter = !shapes.filter({ $0.value.delayMs > 0 || $0.value.loss > 0 }).isEmpty
        let delayer = self.delayer
        if let name = needsDelay.keys.sorted().first, delayer == nil { throw LabError.delayerNeeded(host: name) }
        let iptables = needsFilter ? try LabCommand.require("iptables", package: "iptables") : nil
        let tc = try LabCommand.require("tc", package: "iproute2")

        // Start from a clean slate: no rules, no delayers, no qdiscs.
        stopDelayers()
        let hasIptables = LabCommand.find("iptables")
        for host in hosts {
            if let iptables = hasIptables {
                for table in ["raw", "mangle"] {
                    _ = try? LabCommand.runAllowingFailure(try prefix(for: host.name) + [iptables, "-w", "5", "-t", table, "-F", "PREROUTING"])
                }
            }
            _ = try? LabCommand.runAllowingFailure([tc, "-n", host.namespace, "qdisc", "del", "dev", host.interface, "root"])
            _ = try? LabCommand.runAllowingFailure([tc, "-n", switchNamespace, "qdisc", "del", "dev", host.switchPort, "root"])
        }

        for host in hosts {
            guard let shape = shapes[host.name] else { continue }
            // MTU-sized packets, so that tbf and the delay act on real packets.
            try LabCommand.run([ip, "-n", host.namespace, "link", "set", host.interface, "gso_max_size", "1500"])
            try LabCommand.run([ip, "-n", switchNamespace, "link", "set", host.switchPort, "gso_max_size", "1500"])
            if let rate = shape.rateMbit {
                let tbf = Self.tbfArguments(rateMbit: rate)
                try LabCommand.run([tc, "-n", host.namespace, "qdisc", "replace", "dev", host.interface, "root"] + tbf)
                try LabCommand.run([tc, "-n", switchNamespace, "qdisc", "replace", "dev", host.switchPort, "root"] + tbf)
            }
        }

        guard let iptables else { return }
        // Loss and delay where packets enter each host: its own link's, and
        // that of the shaped host they come from.
        for host in hosts {
            let own = shapes[host.name] ?? LinkShape()
            let senders = hosts.filter { $0 != host }.compactMap { other in shapes[other.name].map { (other, $0) } }
            var lossRules: [[String]] = []
            var delayRules: [[String]] = []
            var queues: [(number: Int, ms: Double)] = []
            for (sender, shape) in senders {
                if shape.loss > 0 { lossRules.append(["-s", sender.address] + Self.lossMatch(shape.loss)) }
                let ms = shape.delayMs + own.delayMs
                if ms > 0 {
                    queues.append((sender.index + 1, ms))
                    delayRules.append(["-s", sender.address, "-j", "NFQUEUE", "--queue-num", "\(sender.index + 1)"])
                }
            }
            if own.loss > 0 { lossRules.append(Self.lossMatch(own.loss)) }
            if own.delayMs > 0 {
                queues.append((0, own.delayMs))
                delayRules.append(["-j", "NFQUEUE", "--queue-num", "0"])
            }
            if !queues.isEmpty, let delayer {
                // The delayer must listen before a rule queues to it: an unbound queue drops.
                try startDelayer(delayer, on: host, queues: queues)
            }
            let base = try prefix(for: host.name) + [iptables, "-w", "5"]
            // Counting rules first (no target): what arrives from each other host, before any loss (``receiveCounters(of:)``).
            for sender in hosts where sender != host {
                try LabCommand.run(base + ["-t", "raw", "-A", "PREROUTING", "-i", host.interface, "-s", sender.address])
            }
            for rule in lossRules { try LabCommand.run(base + ["-t", "raw", "-A", "PREROUTING", "-i", host.interface] + rule) }
            for rule in delayRules { try LabCommand.run(base + ["-t", "mangle", "-A", "PREROUTING", "-i", host.interface] + rule) }
        }
    }

    static func lossMatch(_ loss: Double) -> [String] {
        ["-m", "statistic", "--mode", "random", "--probability", String(format: "%.6f", loss), "-j", "DROP"]
    }

    /// tbf for `rateMbit`: a burst of 4 ms of the rate (at least 16 KB, more
    /// than one tick's worth), and at most 50 ms of queue.
    static func tbfArguments(rateMbit: Double) -> [String] {
        let bytesPerSecond = rateMbit * 1e6 / 8
        let burst = max(16_384, Int(bytesPerSecond * 0.004))
        return ["tbf", "rate", "\(Int(rateMbit * 1000))kbit", "burst", "\(burst)", "latency", "50ms"]
    }

    private func startDelayer(_ delayer: String, on host: Host, queues: [(number: Int, ms: Double)]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ip)
        process.arguments = ["netns", "exec", host.namespace, delayer] + queues.map { "\($0.number):\($0.ms)" }
        let out = Pipe()
        let errors = NSTemporaryDirectory() + "\(host.namespace)-delayer.log"
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: errors)
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw LabError.delayerFailed(host: host.name, output: "\(error)")
        }
        lock.withLock { delayers[host.name] = process }
        // Wait (at most 5 s) for its "ready" line.
        let reader = out.fileHandleForReading
        let ready = DispatchSemaphore(value: 0)
        let box = LineBox()
        DispatchQueue.global().async {
            var data = Data()
            while !data.contains(0x0A) {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                data.append(chunk)
            }
            box.set(String(decoding: data, as: UTF8.self))
            ready.signal()
        }
        if ready.wait(timeout: .now() + 5) == .timedOut || !box.get().hasPrefix("ready") {
            let said = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            throw LabError.delayerFailed(host: host.name, output: said.isEmpty ? "it printed no ready line within 5 s" : said)
        }
    }

    private func stopDelayers() {
        let running = lock.withLock { () -> [Process] in
            defer { delayers = [:] }
            return Array(delayers.values)
        }
        for process in running where process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(3)
        for process in running {
            while process.isRunning && Date() < deadline { usleep(5_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    // MARK: Teardown

    /// Stops the delayers, kills every process left in the lab's namespaces
    /// and deletes the namespaces (which removes the veths and the bridge).
    /// Safe to call more than once.
    public func teardown() {
        let first = lock.withLock { () -> Bool in
            defer { tornDown = true }
            return !tornDown
        }
        guard first else { return }
        stopDelayers()
        for namespace in hosts.map(\.namespace) + [switchNamespace] {
            Self.remove(namespace: namespace, ip: ip)
        }
    }

    /// Kills what runs in `namespace` (bounded: 3 s) and deletes it; quiet when it does not exist.
    static func remove(namespace: String, ip: String) {
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline {
            guard let result = try? LabCommand.runAllowingFailure([ip, "netns", "pids", namespace], timeout: 5), result.status == 0 else { break }
            let pids = result.stdout.split(whereSeparator: \.isNewline).compactMap { Int32($0) }
            if pids.isEmpty { break }
            for pid in pids where pid != getpid() { kill(pid, SIGKILL) }
            usleep(20_000)
        }
        _ = try? LabCommand.runAllowingFailure([ip, "netns", "del", namespace], timeout: 10)
    }

    /// Deletes the namespaces of labs whose process is gone.
    static func sweepStale(ip: String) {
        guard let result = try? LabCommand.runAllowingFailure([ip, "netns", "list"], timeout: 10), result.status == 0 else { return }
        for line in result.stdout.split(whereSeparator: \.isNewline) {
            // "shoal-123-4-host" or "shoal-123-4-host (id: 7)".
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(namePrefix) else { continue }
            let parts = name.dropFirst(namePrefix.count).split(separator: "-")
            guard parts.count >= 3, let pid = Int32(parts[0]), Int(parts[1]) != nil else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                remove(namespace: name, ip: ip)
            }
        }
    }
}

/// A string handed from a reader thread to a waiting one.
private final class LineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = ""
    func set(_ text: String) { lock.withLock { value = text } }
    func get() -> String { lock.withLock { value } }
}
