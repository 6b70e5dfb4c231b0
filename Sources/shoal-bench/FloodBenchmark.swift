import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
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

    @Flag(help: "Run the tracker and the clients in clear (--insecure), without TLS.")
    var insecure = false

    func run() async throws {
        let binary = try shoalBinary(shoal)
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < rlim_t(connections + 256) {
            limit.rlim_cur = min(limit.rlim_max, rlim_t(connections + 256))
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        let dir = NSTemporaryDirectory() + "shoal-flood-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tracker = try TrackerProcess(binary: binary, database: dir + "/flood.sqlite", insecure: insecure,
                                         options: ["--password-rounds", "1000", "--max-connections", "\(connections + 64)", "--log-level", "error"])
        let (port, pid, security) = (tracker.port, tracker.pid, tracker.security)

        // The swarm: a file with an inline manifest (1024 chunks) and a 1 TiB one asked for in parts.
        let seeder = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(30), security: security)
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

        // The flood: connections (TLS unless --insecure) that log in, then
        // send their requests and never read again.
        let started = ContinuousClock.now
        var channels: [any Channel] = []
        var sent = 0
        let tls = insecure ? nil : try NIOSSLContext(configuration: {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            return configuration
        }())
        for i in 0..<connections {
            let requestFrames = requests
            let hugeID = huge.contentID
            let ask = self.ask
            let user = "flood\(i / 8)"
            let done = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Int.self)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls { try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                        try channel.pipeline.syncOperations.addHandler(FloodClient(user: user, requests: requestFrames, done: done) { r, token in
                            let details = Message.details(Details(token: token, name: "inline.bin"))
                            let part = Message.manifest(ManifestRequest(token: token, contentID: hugeID, from: (r * ManifestPart.maximumDigests) % 262_144))
                            switch ask {
                            case "details": return details
                            case "manifest": return part
                            case "list": return .list(ListFiles(token: token))
                            default: return r % 2 == 0 ? details : part
                            }
                        })
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            channels.append(channel)
            sent += try await done.futureResult.get()
        }
        say(String(format: "flood sent: %d requests over %d %@ connections in %.1f s", sent, connections, insecure ? "clear" : "TLS",
                   (ContinuousClock.now - started).seconds))

        // Hold it, sampling memory, while an honest client asks for the list.
        let honest = try await FramedConnection.connect(host: "127.0.0.1", port: port, role: "peer", timeout: .seconds(30), security: security)
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
        for channel in channels { try? await channel.close() }
        try await Task.sleep(for: .seconds(3))
        say("tracker resident 3 s after the flood closed: \(TrackerBenchmark.memory(pid: pid).resident / 1024) MiB")
        honest.close()
        seeder.close()
        tracker.stop()
    }

    static func manifest(chunks: Int, chunkSize: UInt32, seed: UInt8) -> Manifest {
        let digests = (0..<chunks).map { index -> ChunkDigest in
            var bytes = [UInt8](repeating: seed, count: 32)
            bytes[0] = UInt8(index & 0xFF); bytes[1] = UInt8((index >> 8) & 0xFF); bytes[2] = UInt8(index >> 16)
            return ChunkDigest(bytes: bytes)!
        }
        return try! Manifest(fileSize: UInt64(chunks) * UInt64(chunkSize), chunkSize: chunkSize, digests: digests)
    }

    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
}

/// One flooding client: sends hello and login, and once logged in turns off
/// reading for good and writes its requests.
private final class FloodClient: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let user: String
    private let requests: Int
    private let done: EventLoopPromise<Int>
    private let make: (Int, String) -> Message
    private var decoder = FrameDecoder()
    private var buffer = ByteBuffer()
    private var loggedIn = false

    init(user: String, requests: Int, done: EventLoopPromise<Int>, make: @escaping (Int, String) -> Message) {
        self.user = user
        self.requests = requests
        self.done = done
        self.make = make
    }

    func channelActive(context: ChannelHandlerContext) {
        for message in [Message.hello(Hello(role: "peer", software: "flood")), .login(Login(user: user, password: "pw", port: 0))] {
            if let frame = try? message.frame(requestID: message.type == .hello ? 0 : 1) { context.write(NIOAny(frame.encoded()), promise: nil) }
        }
        context.flush()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !loggedIn else { return }
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        while let frame = try? decoder.decodeFrame(&buffer) {
            guard let message = try? Message(frame: frame) else { continue }
            switch message {
            case let .loggedIn(reply):
                loggedIn = true
                context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
                for r in 0..<requests {
                    if let frame = try? make(r, reply.token).frame(requestID: UInt32(r + 10)) { context.write(NIOAny(frame.encoded()), promise: nil) }
                }
                context.flush()
                done.succeed(requests)
                return
            case let .error(error):
                done.fail(ValidationError("login of \(user): \(error.message)"))
                context.close(promise: nil)
                return
            default:
                continue
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.close(promise: nil)
    }
}
