import CEpoll
import Foundation
import NIOCore
import ShoalCore
import ShoalWire

/// Phase 2 of `shoal-bench tracker --rate … --plain-sockets`: the same paced
/// requests as ``LoadClient/runPaced(start:period:)``, from plain
/// non-blocking sockets served by one thread with `epoll`, instead of 500
/// NIO channels.
///
/// Why: the clients share the machine's two cores with the tracker they
/// measure. Through NIO each request cost the clients about as much CPU as
/// the tracker spends answering it, and a client that fell behind sent its
/// due requests two or three at once (the tracker then answered them
/// together, cheaper than it would real clients, and the lag counted as its
/// latency). Here a request is a `send` of bytes encoded beforehand, and
/// replies are skimmed (``SkimmingFrameDecoder``) on the same 250 µs ticks,
/// the thread sleeping between them so that no reply has to wake it. What is
/// measured is the same: each request is timed from when it was due to when
/// its reply's last byte was read, replies are checked by type and request
/// id, and probes are answered.
///
/// In clear only (no TLS). The sessions are new logins of the accounts phase
/// 1 registered, made (untimed) through the same loop before the paced run.
final class PlainLoadClients {
    /// A request sent and not answered yet.
    private struct Sent {
        var id: UInt32
        var kind: LoadClient.Kind
        var due: NIODeadline
        var sent: NIODeadline
        var detailsOf: Int?
    }

    /// Where a client is before the paced run.
    private enum Stage {
        case hello(HandshakeStateMachine)
        case login
        case ready
    }

    private struct Client {
        let index: Int
        let fd: Int32
        var stage: Stage
        /// The script, each request encoded with request id 0 (patched when sent).
        var script: [(kind: LoadClient.Kind, bytes: [UInt8], detailsOf: Int?)] = []
        var next = 0
        var nextID: UInt32 = 1
        /// Requests in flight, oldest first (a connection's replies come in order).
        var inFlight: [Sent] = []
        var inFlightStart = 0
        /// Bytes the socket did not take yet (it was full).
        var unsent: [UInt8] = []
        var inbound = ByteBuffer()
        var decoder = SkimmingFrameDecoder()
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// What a run measured.
    struct Results {
        /// Latencies in ms by ``LoadClient/Kind``.
        var samples = [[Double]](repeating: [], count: LoadClient.Kind.allCases.count)
        var timeline: [(due: NIODeadline, kind: LoadClient.Kind, milliseconds: Double)] = []
        /// `details` answered `not_found` for a file whose announce was not answered yet when they were sent.
        var racing = 0
    }

    /// Reads take at most this much (a `list` page is about 12 KB).
    static let readSize = 32 * 1024
    /// The run and the logins fail after this long without a reply.
    static let silence = 120.0

    private var clients: [Client] = []
    private let epoll: Int32
    private var events = [epoll_event](repeating: epoll_event(), count: 256)

    private init(epoll: Int32) {
        self.epoll = epoll
    }

    deinit {
        closeAll()
        close(epoll)
    }

    /// Closes every connection.
    func closeAll() {
        for client in clients { close(client.fd) }
        clients = []
    }

    /// ``connect(count:ports:fileCount:manifests:compactList:announcing:rounds:)`` on a thread of its own.
    static func connectOnThread(count: Int, ports: [Int], fileCount: Int, manifests: [Manifest], compactList: Bool,
                                announcing: Bool, rounds: Int) async throws -> PlainLoadClients {
        try await onThread(named: "plain-clients-login") {
            try connect(count: count, ports: ports, fileCount: fileCount, manifests: manifests, compactList: compactList,
                        announcing: announcing, rounds: rounds)
        }.value
    }

    /// ``runPaced(start:period:)`` on a thread of its own; the connections are closed after.
    static func runOnThread(_ engine: PlainLoadClients, schedule: PacedSchedule) async throws -> Results {
        let box = UncheckedBox(engine)
        return try await onThread(named: "plain-clients") {
            defer { box.value.closeAll() }
            return try box.value.runPaced(schedule)
        }.value
    }

    private static func onThread<Value>(named name: String, _ work: @escaping @Sendable () throws -> Value) async throws -> UncheckedBox<Value> {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { UncheckedBox(try work()) }) }
            thread.name = name
            thread.start()
        }
    }

    /// Connects `count` clients (client `i` to `ports[i % ports.count]` on
    /// 127.0.0.1), takes each through the handshake and a login of the
    /// account phase 1 registered for it, and encodes its script. Blocks.
    static func connect(count: Int, ports: [Int], fileCount: Int, manifests: [Manifest], compactList: Bool,
                        announcing: Bool, rounds: Int) throws -> PlainLoadClients {
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw Failure(description: "epoll_create1: \(Self.lastError)") }
        let engine = PlainLoadClients(epoll: epoll)
        for index in 0..<count {
            let fd = try Self.connectedSocket(port: ports[index % ports.count])
            engine.clients.append(Client(index: index, fd: fd,
                                         stage: .hello(HandshakeStateMachine(role: .initiator, localRole: "peer", software: ShoalVersion.software))))
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u64 = UInt64(index)
            guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { throw Failure(description: "epoll_ctl: \(Self.lastError)") }
        }
        for index in 0..<count {
            guard case var .hello(handshake) = engine.clients[index].stage, case let .send(hello) = handshake.start() else {
                throw Failure(description: "the handshake would not start")
            }
            engine.clients[index].stage = .hello(handshake)
            try engine.enqueue(index, try hello.frame(requestID: engine.takeID(index)))
        }
        // Every hello answered, then a login each; probes answered meanwhile
        // (with production password hashing, 500 logins outlast the tracker's 30 s probe interval).
        var ready = 0
        var lastProgress = NIODeadline.now()
        while ready < count {
            var progress = false
            try engine.poll(wait: .milliseconds(100)) { index, frame in
                switch engine.clients[index].stage {
                case var .hello(handshake):
                    guard case .established = handshake.receive(try Message(frame: frame)) else {
                        throw Failure(description: "\(LoadClient.user(index)): the handshake failed (\(LoadClient.describe(frame)))")
                    }
                    engine.clients[index].stage = .login
                    let login = Login(user: LoadClient.user(index), password: LoadClient.password(index), port: LoadClient.servePort(index))
                    try engine.enqueue(index, try login.frame(requestID: engine.takeID(index)))
                case .login:
                    guard case let .loggedIn(session) = try Message(frame: frame) else {
                        throw Failure(description: "\(LoadClient.user(index)): login answered with \(LoadClient.describe(frame))")
                    }
                    engine.clients[index].script = try LoadClient.script(
                        index: index, token: session.token, manifest: manifests[index], fileCount: fileCount, compactList: compactList,
                        announcing: announcing, rounds: rounds
                    ).map { kind, frame, detailsOf in (kind, Array(buffer: frame.encoded()), detailsOf) }
                    engine.clients[index].stage = .ready
                    ready += 1
                case .ready:
                    throw Failure(description: "\(LoadClient.user(index)): a \(frame.type) came unasked after the login")
                }
                progress = true
            }
            if progress {
                lastProgress = .now()
            } else if Double((NIODeadline.now() - lastProgress).nanoseconds) / 1e9 > silence {
                throw Failure(description: "\(count - ready) of \(count) logins unanswered after \(Int(silence)) s")
            }
        }
        return engine
    }

    /// Plays every client's script at the pace of `schedule` on the calling
    /// thread, each request sent on the first tick at or after it is due;
    /// replies are read on the ticks too, and timed from when their request
    /// was due. Returns after the last reply; throws on the first error, or
    /// when nothing is answered for ``silence`` seconds.
    func runPaced(_ schedule: PacedSchedule) throws -> Results {
        var schedule = schedule
        var results = Results()
        let announces = AnnounceLog()
        let total = clients.reduce(0) { $0 + $1.script.count }
        var answered = 0
        var lastProgress = NIODeadline.now()
        while answered < total {
            let now = NIODeadline.now()
            try schedule.takeDue(by: now) { index, due in
                if clients[index].next < clients[index].script.count { try send(index, due: due, now: now) }
            }
            // Take the replies that came, without waiting; with none, sleep to
            // the next tick. Not sleeping in epoll_wait: then each of the
            // tracker's replies would have to wake this thread, a cost (an
            // interrupt to another core; on a VM, an exit to the host)
            // charged to the tracker's write.
            let took = try poll(wait: nil) { index, frame in
                if try handle(index, frame, results: &results, announces: announces) {
                    answered += 1
                    lastProgress = .now()
                }
            }
            if took == 0 {
                let sinceStart = (NIODeadline.now() - schedule.start).nanoseconds
                let untilTick = sinceStart < 0 ? -sinceStart : PacedSchedule.tick.nanoseconds - sinceStart % PacedSchedule.tick.nanoseconds
                var wait = timespec(tv_sec: 0, tv_nsec: Int(min(untilTick, PacedSchedule.tick.nanoseconds)))
                nanosleep(&wait, nil)
                if Double((NIODeadline.now() - lastProgress).nanoseconds) / 1e9 > Self.silence {
                    throw Failure(description: "no reply for \(Int(Self.silence)) s with \(total - answered) requests unanswered")
                }
            }
        }
        results.racing = announces.racing
        return results
    }

    // MARK: - Sending

    private func takeID(_ index: Int) -> UInt32 {
        defer { clients[index].nextID &+= 1 }
        return clients[index].nextID
    }

    /// Sends client `index`'s next script request, with its own request id.
    private func send(_ index: Int, due: NIODeadline, now: NIODeadline) throws {
        let id = takeID(index)
        let next = clients[index].next
        clients[index].next += 1
        let (kind, _, detailsOf) = clients[index].script[next]
        // Each script entry goes out once: its id is written in place.
        clients[index].script[next].bytes.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: id.bigEndian, toByteOffset: 8, as: UInt32.self)
        }
        clients[index].inFlight.append(Sent(id: id, kind: kind, due: due, sent: now, detailsOf: detailsOf))
        try enqueue(index, clients[index].script[next].bytes)
    }

    private func enqueue(_ index: Int, _ frame: Frame) throws {
        try enqueue(index, Array(buffer: frame.encoded()))
    }

    /// Sends `bytes` now, or what the socket does not take as soon as it can.
    private func enqueue(_ index: Int, _ bytes: [UInt8]) throws {
        guard clients[index].unsent.isEmpty else {
            clients[index].unsent += bytes
            return
        }
        let sent = try write(index, bytes)
        guard sent < bytes.count else { return }
        clients[index].unsent = Array(bytes[sent...])
        try watchWritable(index, true)
    }

    private func flushUnsent(_ index: Int) throws {
        let sent = try write(index, clients[index].unsent)
        clients[index].unsent.removeFirst(sent)
        if clients[index].unsent.isEmpty { try watchWritable(index, false) }
    }

    /// What the socket took of `bytes` (0 when it is full).
    private func write(_ index: Int, _ bytes: [UInt8]) throws -> Int {
        while true {
            let sent = bytes.withUnsafeBytes { Glibc.send(clients[index].fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent >= 0 { return sent }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
            throw Failure(description: "\(LoadClient.user(index)): send: \(Self.lastError)")
        }
    }

    private func watchWritable(_ index: Int, _ on: Bool) throws {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | (on ? EPOLLOUT.rawValue : 0)
        event.data.u64 = UInt64(index)
        guard epoll_ctl(epoll, EPOLL_CTL_MOD, clients[index].fd, &event) == 0 else { throw Failure(description: "epoll_ctl: \(Self.lastError)") }
    }

    // MARK: - Receiving

    /// Takes the sockets' events, waiting up to `wait` (nil: not at all):
    /// sends what was waiting for room, reads what came, and calls `frame`
    /// for each whole reply (large payloads skimmed, not kept), probes
    /// answered here. Returns how many sockets had something.
    @discardableResult
    private func poll(wait: TimeAmount?, _ frame: (Int, Frame) throws -> Void) throws -> Int {
        let ready = epoll_wait(epoll, &events, Int32(events.count), wait.map { Int32($0.nanoseconds / 1_000_000) } ?? 0)
        if ready < 0 {
            guard errno == EINTR else { throw Failure(description: "epoll_wait: \(Self.lastError)") }
            return 0
        }
        for e in 0..<Int(ready) {
            let index = Int(events[e].data.u64)
            if events[e].events & EPOLLOUT.rawValue != 0 { try flushUnsent(index) }
            guard events[e].events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 else { continue }
            let fd = clients[index].fd
            let count = try clients[index].inbound.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readSize) { bytes in
                let count = Glibc.read(fd, bytes.baseAddress, bytes.count)
                if count == 0 { throw Failure(description: "\(LoadClient.user(index)): the tracker closed the connection") }
                if count < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
                    throw Failure(description: "\(LoadClient.user(index)): read: \(Self.lastError)")
                }
                return count
            }
            guard count > 0 else { continue }
            // Taken out while the replies are handled (which may touch the client), so the buffer stays unique.
            var inbound = clients[index].inbound
            var decoder = clients[index].decoder
            clients[index].inbound = ByteBuffer()
            defer {
                inbound.discardReadBytes()
                clients[index].inbound = inbound
                clients[index].decoder = decoder
            }
            while let reply = try decoder.decode(buffer: &inbound) {
                if reply.type == .checkActive {
                    let probe = try CheckActive(frame: reply)
                    try enqueue(index, try Active(nonce: probe.nonce).frame(requestID: reply.requestID))
                } else {
                    try frame(index, reply)
                }
            }
        }
        return Int(ready)
    }

    /// Times a reply against the request it answers; true when it does.
    private func handle(_ index: Int, _ frame: Frame, results: inout Results, announces: AnnounceLog) throws -> Bool {
        let start = clients[index].inFlightStart
        guard start < clients[index].inFlight.count, clients[index].inFlight[start].id == frame.requestID else {
            throw Failure(description: "\(LoadClient.user(index)): a \(frame.type) with request id \(frame.requestID) answers nothing sent")
        }
        let now = NIODeadline.now()
        let sent = clients[index].inFlight[start]
        clients[index].inFlightStart += 1
        if clients[index].inFlightStart == clients[index].inFlight.count {
            clients[index].inFlight.removeAll(keepingCapacity: true)
            clients[index].inFlightStart = 0
        }
        let latency = Double((now - sent.due).nanoseconds) / 1e6
        results.samples[sent.kind.rawValue].append(latency)
        results.timeline.append((sent.due, sent.kind, latency))
        if sent.kind == .announce && frame.type == sent.kind.replyType { announces.answered(clients[index].index, at: now) }
        guard frame.type == sent.kind.replyType || announces.raced(sent.detailsOf, sent: sent.sent, reply: frame) else {
            throw Failure(description: "\(LoadClient.user(index)): \(sent.kind.name) answered with \(LoadClient.describe(frame))")
        }
        return true
    }

    // MARK: - Sockets

    /// A TCP connection to 127.0.0.1:`port`, without Nagle, non-blocking once connected.
    private static func connectedSocket(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(lastError)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var one: Int32 = 1
        let flags = fcntl(fd, F_GETFL)
        guard connected == 0,
              setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) == 0,
              flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            let reason = lastError
            close(fd)
            throw Failure(description: "connecting to 127.0.0.1:\(port): \(reason)")
        }
        return fd
    }

    private static var lastError: String { String(cString: strerror(errno)) }
}

/// Hands a value confined to one thread at a time to another thread.
private final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
