import ArgumentParser
import Foundation
import NIOCore
import ShoalCore
import ShoalNet
import ShoalWire

/// Connections that send requests and never read the replies, against a
/// `shoal tracker` process: the tracker's memory while they pile up, and
/// whether an honest client is still served meanwhile.
struct FloodBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flood",
        abstract: "Connections that send requests and never read: the tracker's peak memory, and an honest client's latency meanwhile."
    )

    @Option(help: "Connections that flood.")
    var connections = 1024

    @Option(help: "Requests each flooding connection sends (as many as the tracker takes).")
    var requests = 400

    @Option(help: "What the flood asks: mixed (details of a 1024-chunk file and parts of a 1 TiB manifest), details, manifest, list.")
    var ask = "mixed"

    @Option(help: "Seconds to hold the flood before measuring and closing.")
    var hold = 10.0

    @Option(help: "The shoal binary to run as the tracker (default: next to this one).")
    var shoal: String?

    func run() async throws {
        let binary = shoal ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("shoal").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ValidationError("no shoal binary at \(binary); build it (swift build -c release) or pass --shoal")
        }
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < rlim_t(connections + 256) {
            limit.rlim_cur = min(limit.rlim_max, rlim_t(connections + 256))
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        let dir = NSTemporaryDirectory() + "shoal-flood-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tracker = Process()
        tracker.executableURL = URL(fileURLWithPath: binary)
        tracker.arguments = ["tracker", "--port", "0", "--db", dir + "/flood.sqlite", "--password-rounds", "1000", "--registration-burst", "100000",
                             "--max-connections", "\(connections + 64)", "--log-level", "error"]
        let out = Pipe()
        tracker.standardOutput = out
        try tracker.run()
        defer { if tracker.isRunning { kill(tracker.processIdentifier, SIGKILL) } }
        guard let line = TrackerBenchmark.readLine(out.fileHandleForReading), line.hasPrefix("listening on "),
              let port = Int(line.split(separator: ":").last ?? "") else {
            throw ValidationError("the tracker did not start")
        }
        let pid = tracker.processIdentifier

        // The swarm: a file with an inline manifest (1024 chunks) and a 1 TiB one asked for in parts.
        let seeder = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(30))
        _ = try await seeder.request(.register(Register(user: "seeder", password: "pw")), timeout: .seconds(30))
        guard case let .loggedIn(seeded) = try await seeder.request(.login(Login(user: "seeder", password: "pw", port: 7000)), timeout: .seconds(30)) else {
            throw ValidationError("the seeder could not log in")
        }
        let inline = Self.manifest(chunks: 1024, chunkSize: 1 << 20, seed: 1)
        let huge = Self.manifest(chunks: 262_144, chunkSize: 4 << 20, seed: 2)
        _ = try await seeder.request(.announce(Announce(token: seeded.token, replace: true, files: [
            AnnouncedFile(name: "inline.bin", contentID: inline.contentID, manifest: ManifestPayload(inline)),
            AnnouncedFile(name: "huge.bin", contentID: huge.contentID, manifest: ManifestPayload(huge)),
        ])), timeout: .seconds(60))
        let accounts = (connections + 7) / 8
        for i in 0..<accounts {
            _ = try await seeder.request(.register(Register(user: "flood\(i)", password: "pw")), timeout: .seconds(30))
        }
        let baseline = TrackerBenchmark.memory(pid: pid)
        say("tracker pid \(pid) on port \(port): \(baseline.resident / 1024) MiB resident with the swarm loaded; \(connections) connections from \(accounts) accounts, up to \(requests) requests each, never reading")

        // The flood: raw sockets that log in, then send and never read.
        var sockets: [Int32] = []
        var sent = 0
        let started = ContinuousClock.now
        for i in 0..<connections {
            let fd = try Self.connect(port: port)
            sockets.append(fd)
            let token = try Self.login(fd, user: "flood\(i / 8)")
            var flags = fcntl(fd, F_GETFL)
            flags |= O_NONBLOCK
            _ = fcntl(fd, F_SETFL, flags)
            for r in 0..<requests {
                let details = Message.details(Details(token: token, name: "inline.bin"))
                let part = Message.manifest(ManifestRequest(token: token, contentID: huge.contentID, from: (r * 1024) % 262_144))
                let message: Message = switch ask {
                case "details": details
                case "manifest": part
                case "list": .list(ListFiles(token: token))
                default: r % 2 == 0 ? details : part
                }
                let bytes = Array(buffer: try message.frame(requestID: UInt32(r + 10)).encoded())
                guard Self.sendAll(fd, bytes) else { break }
                sent += 1
            }
        }
        say(String(format: "flood sent: %d requests over %d connections in %.1f s", sent, connections, (ContinuousClock.now - started).seconds))

        // Hold it, sampling memory, while an honest client asks for the list.
        let honest = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(30))
        _ = try await honest.request(.register(Register(user: "honest", password: "pw")), timeout: .seconds(30))
        guard case let .loggedIn(session) = try await honest.request(.login(Login(user: "honest", password: "pw", port: 0)), timeout: .seconds(30)) else {
            throw ValidationError("the honest client could not log in")
        }
        var latencies: [Double] = []
        var peakResident = 0
        let holdStart = ContinuousClock.now
        while (ContinuousClock.now - holdStart).seconds < hold {
            let asked = ContinuousClock.now
            _ = try await honest.request(.details(Details(token: session.token, name: "inline.bin")), timeout: .seconds(30))
            latencies.append((ContinuousClock.now - asked).seconds * 1000)
            peakResident = max(peakResident, TrackerBenchmark.memory(pid: pid).resident)
            try await Task.sleep(for: .milliseconds(200))
        }
        let memory = TrackerBenchmark.memory(pid: pid)
        latencies.sort()
        say("tracker memory: peak \(memory.peak / 1024) MiB (VmHWM), \(max(peakResident, memory.resident) / 1024) MiB resident at most while held, \(baseline.resident / 1024) MiB before the flood")
        say(String(format: "honest client's details during the flood: %d requests, p50 %.1f ms, max %.1f ms",
                   latencies.count, TrackerBenchmark.percentile(latencies, 0.5), latencies.last ?? 0))
        for fd in sockets { close(fd) }
        try await Task.sleep(for: .seconds(3))
        say("tracker resident 3 s after the flood closed: \(TrackerBenchmark.memory(pid: pid).resident / 1024) MiB")
        honest.close()
        seeder.close()
        kill(pid, SIGTERM)
        tracker.waitUntilExit()
    }

    static func manifest(chunks: Int, chunkSize: UInt32, seed: UInt8) -> Manifest {
        let digests = (0..<chunks).map { index -> ChunkDigest in
            var bytes = [UInt8](repeating: seed, count: 32)
            bytes[0] = UInt8(index & 0xFF); bytes[1] = UInt8((index >> 8) & 0xFF); bytes[2] = UInt8(index >> 16)
            return ChunkDigest(bytes: bytes)!
        }
        return try! Manifest(fileSize: UInt64(chunks) * UInt64(chunkSize), chunkSize: chunkSize, digests: digests)
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw ValidationError("connect: \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Handshake and login on a blocking socket; returns the session token.
    static func login(_ fd: Int32, user: String) throws -> String {
        let hello = Array(buffer: try Message.hello(Hello(role: "peer", software: "flood")).frame(requestID: 0).encoded())
        let login = Array(buffer: try Message.login(Login(user: user, password: "pw", port: 0)).frame(requestID: 1).encoded())
        guard sendAll(fd, hello + login) else { throw ValidationError("send failed") }
        var decoder = FrameDecoder()
        var buffer = ByteBuffer()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            while let frame = try decoder.decodeFrame(&buffer) {
                switch try Message(frame: frame) {
                case let .loggedIn(reply): return reply.token
                case let .error(error): throw ValidationError("login of \(user): \(error.message)")
                default: continue
                }
            }
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { throw ValidationError("the tracker closed the connection during login") }
            buffer.writeBytes(chunk[0..<n])
        }
    }

    /// Sends everything, or returns false once the socket would block (the tracker stopped reading).
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    // Partly sent: finish this frame blocking, so the stream stays whole, then stop.
                    if offset > 0 {
                        var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                        guard poll(&pollfd, 1, 5000) > 0 else { return false }
                        continue
                    }
                    return false
                }
                return false
            }
            offset += n
        }
        return true
    }

    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
}
