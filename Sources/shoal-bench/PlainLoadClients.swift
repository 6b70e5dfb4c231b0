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
/// measure. Through NIO each request costs the clients about as much CPU as
/// the tracker spends answering it (a pipeline pass each way, a promise, a
/// buffer per frame); here it is a `write` of bytes encoded beforehand and a
/// `read` that skims the reply, so more of the cores are left to the tracker,
/// as they would be with clients on other machines. What is measured is the
/// same: each request is timed from when it was due to when the last byte
/// of its reply arrived, replies are checked by type and request id, and
/// probes are answered.
///
/// In clear only (no TLS). The sessions are new logins of the accounts
/// phase 1 registered, made before the timed phase.
final class PlainLoadClients {
    /// One request of a client's script, encoded with request id 0.
    private struct Request {
        var kind: LoadClient.Kind
        var bytes: [UInt8]
        var reply: MessageType
        var detailsOf: Int?
    }

    /// A request sent and not answered yet.
    private struct Sent {
        var id: UInt32
        var kind: LoadClient.Kind
        var reply: MessageType
        var due: NIODeadline
        var sent: NIODeadline
        var detailsOf: Int?
    }

    private struct Client {
        let index: Int
        let fd: Int32
        var script: [Request] = []
        var next = 0
        var nextID: UInt32 = 1
        /// Requests in flight, oldest first (a connection's replies come in order).
        var inFlight: [Sent] = []
        var inFlightStart = 0
        /// Bytes not taken by the socket yet (it was full).
        var unsent: [UInt8] = []
        /// The reply being read: its header's bytes so far, then its payload.
        var header: [UInt8] = []
        var parsed: FrameHeader?
        var remaining = 0
        var kept: [UInt8] = []
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

    /// Payloads up to this size are kept (errors, probes); larger ones are skipped as they arrive.
    static let keptPayload = 4096

    private var clients: [Client] = []
    private let epoll: Int32
    private var scratch = [UInt8](repeating: 0, count: 256 * 1024)

    private init(epoll: Int32) {
        self.epoll = epoll
    }

    deinit {
        closeAll()
        Glibc.close(epoll)
    }

    /// Connects `count` clients (client `i` to `ports[i % ports.count]` on
    /// 127.0.0.1), each through the handshake and a login of the account
    /// phase 1 registered for it, and encodes each one's script.
    static func connect(count: Int, ports: [Int], fileCount: Int, manifests: [Manifest], compactList: Bool,
                        announcing: Bool, rounds: Int) throws -> PlainLoadClients {
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw Failure(description: "epoll_create1: \(String(cString: strerror(errno)))") }
        let engine = PlainLoadClients(epoll: epoll)
        for index in 0..<count {
            engine.clients.append(Client(index: index, fd: try Self.connectedSocket(port: ports[index % ports.count])))
        }
        // Every hello, then every answer; every login, then every answer (the tracker hashes them in parallel).
        var handshakes = [HandshakeStateMachine](repeating: HandshakeStateMachine(role: .initiator, localRole: "peer", software: ShoalVersion.software),
                                                 count: count)
        for index in 0..<count {
            guard case let .send(hello) = handshakes[index].start() else { throw Failure(description: "the handshake would not start") }
            try engine.writeAll(index, try hello.frame(requestID: 1))
        }
        for index in 0..<count {
            let reply = try engine.readFrame(index)
            guard case .established = handshakes[index].receive(try Message(frame: reply)) else {
                throw Failure(description: "\(LoadClient.user(index)): the handshake failed (\(reply.type))")
            }
        }
        for index in 0..<count {
            let login = Login(user: LoadClient.user(index), password: LoadClient.password(index), port: LoadClient.servePort(index))
            try engine.writeAll(index, try login.frame(requestID: 2))
        }
        for index in 0..<count {
            let reply = try engine.readFrame(index)
            guard case let .loggedIn(session) = try Message(frame: reply) else {
                throw Failure(description: "\(LoadClient.user(index)): login answered with \(Self.describe(reply))")
            }
            engine.clients[index].nextID = 3
            engine.clients[index].script = try LoadClient.script(
                index: index, token: session.token, manifest: manifests[index], fileCount: fileCount, compactList: compactList,
                announcing: announcing, rounds: rounds
            ).map { kind, frame, detailsOf in
                let reply: MessageType = switch kind {
                case .announce: .announced
                case .list: .fileList
                default: .fileDetails
                }
                var buffer = frame.encoded()
                return Request(kind: kind, bytes: buffer.readBytes(length: buffer.readableBytes)!, reply: reply, detailsOf: detailsOf)
            }
        }
        for index in 0..<count {
            let fd = engine.clients[index].fd
            let flags = fcntl(fd, F_GETFL)
            guard fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw Failure(description: "fcntl: \(String(cString: strerror(errno)))") }
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u64 = UInt64(index)
            guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { throw Failure(description: "epoll_ctl: \(String(cString: strerror(errno)))") }
        }
        return engine
    }

    /// Plays every client's script at a fixed pace on the calling thread:
    /// client `i`'s request `k` is due at `start + period × (i / count + k)`
    /// (as ``PacedSchedule`` has them), sent on the first tick (every 250 µs)
    /// at or after that; replies are read on the ticks too. Returns after the last reply, or throws on the
    /// first error, or when nothing is answered for `timeout` seconds.
    func runPaced(start: NIODeadline, period: TimeAmount, timeout: Double = 120) throws -> Results {
        var results = Results()
        let announces = AnnounceLog()
        let count = clients.count
        let perClient = clients.map(\.script.count).max() ?? 0
        let total = clients.reduce(0) { $0 + $1.script.count }
        var cursor = 0
        var answered = 0
        var lastProgress = NIODeadline.now()
        let tick = Int64(250_000)
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while answered < total {
            let now = NIODeadline.now()
            // Send what is due, in due order.
            while cursor < count * perClient {
                let index = cursor % count
                let due = start + .nanoseconds(period.nanoseconds * Int64(index) / Int64(count) + period.nanoseconds * Int64(cursor / count))
                guard due <= now else { break }
                if clients[index].next < clients[index].script.count {
                    try send(index, due: due, now: now)
                }
                cursor += 1
            }
            // Take the replies that came, without waiting; with none, sleep
            // to the next tick. Not sleeping in epoll_wait: then the
            // tracker's every reply would have to wake this thread, a cost
            // (an interrupt to another core, on a VM an exit to the host)
            // charged to the tracker's write. A reply is read up to one tick
            // late, and timed so.
            let ready = epoll_wait(epoll, &events, Int32(events.count), 0)
            if ready < 0 {
                guard errno == EINTR else { throw Failure(description: "epoll_wait: \(String(cString: strerror(errno)))") }
                continue
            }
            if ready == 0 {
                let sinceStart = (now - start).nanoseconds
                let nextTick = sinceStart < 0 ? -sinceStart : tick - sinceStart % tick
                var wait = timespec(tv_sec: 0, tv_nsec: Int(max(0, min(nextTick, tick))))
                nanosleep(&wait, nil)
            }
            for e in 0..<Int(ready) {
                let index = Int(events[e].data.u64)
                if events[e].events & EPOLLOUT.rawValue != 0 { try flushUnsent(index) }
                if events[e].events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                    let got = try receive(index, results: &results, announces: announces)
                    if got > 0 {
                        answered += got
                        lastProgress = .now()
                    }
                }
            }
            if ready == 0, Double((NIODeadline.now() - lastProgress).nanoseconds) / 1e9 > timeout {
                throw Failure(description: "no reply for \(Int(timeout)) s with \(total - answered) requests unanswered")
            }
        }
        results.racing = announces.racing
        return results
    }

    /// ``runPaced(start:period:timeout:)`` on a thread of its own (it blocks
    /// in `epoll` between ticks), the engine closed after.
    static func runOnThread(_ engine: PlainLoadClients, start: NIODeadline, period: TimeAmount) async throws -> Results {
        let box = UncheckedBox(engine)
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                let result = Result { try box.value.runPaced(start: start, period: period) }
                box.value.closeAll()
                continuation.resume(with: result)
            }
            thread.name = "plain-clients"
            thread.start()
        }
    }

    /// Closes every connection.
    func closeAll() {
        for client in clients { Glibc.close(client.fd) }
        clients = []
    }

    // MARK: - Sending

    private func send(_ index: Int, due: NIODeadline, now: NIODeadline) throws {
        let id = clients[index].nextID
        clients[index].nextID &+= 1
        let request = clients[index].script[clients[index].next]
        clients[index].next += 1
        var bytes = request.bytes
        bytes[8] = UInt8(truncatingIfNeeded: id >> 24)
        bytes[9] = UInt8(truncatingIfNeeded: id >> 16)
        bytes[10] = UInt8(truncatingIfNeeded: id >> 8)
        bytes[11] = UInt8(truncatingIfNeeded: id)
        clients[index].inFlight.append(Sent(id: id, kind: request.kind, reply: request.reply, due: due, sent: now, detailsOf: request.detailsOf))
        try enqueue(index, bytes)
    }

    /// Writes `bytes` now, or what the socket does not take when it can.
    private func enqueue(_ index: Int, _ bytes: [UInt8]) throws {
        guard clients[index].unsent.isEmpty else {
            clients[index].unsent += bytes
            return
        }
        let written = bytes.withUnsafeBytes { Glibc.write(clients[index].fd, $0.baseAddress, $0.count) }
        if written == bytes.count { return }
        if written < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
            throw Failure(description: "\(LoadClient.user(index)): write: \(String(cString: strerror(errno)))")
        }
        clients[index].unsent = Array(bytes[max(0, written)...])
        try watchWritable(index, true)
    }

    private func flushUnsent(_ index: Int) throws {
        guard !clients[index].unsent.isEmpty else { return try watchWritable(index, false) }
        let written = clients[index].unsent.withUnsafeBytes { Glibc.write(clients[index].fd, $0.baseAddress, $0.count) }
        if written < 0 {
            guard errno == EAGAIN || errno == EWOULDBLOCK else {
                throw Failure(description: "\(LoadClient.user(index)): write: \(String(cString: strerror(errno)))")
            }
            return
        }
        clients[index].unsent.removeFirst(written)
        if clients[index].unsent.isEmpty { try watchWritable(index, false) }
    }

    private func watchWritable(_ index: Int, _ on: Bool) throws {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | (on ? EPOLLOUT.rawValue : 0)
        event.data.u64 = UInt64(index)
        guard epoll_ctl(epoll, EPOLL_CTL_MOD, clients[index].fd, &event) == 0 else {
            throw Failure(description: "epoll_ctl: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: - Receiving

    /// Reads what client `index`'s socket has and handles each reply it
    /// completes; returns how many timed requests were answered.
    private func receive(_ index: Int, results: inout Results, announces: AnnounceLog) throws -> Int {
        let count = scratch.withUnsafeMutableBytes { Glibc.read(clients[index].fd, $0.baseAddress, $0.count) }
        if count == 0 { throw Failure(description: "\(LoadClient.user(index)): the tracker closed the connection") }
        if count < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return 0 }
            throw Failure(description: "\(LoadClient.user(index)): read: \(String(cString: strerror(errno)))")
        }
        let now = NIODeadline.now()
        var answered = 0
        var offset = 0
        while offset < count {
            if clients[index].parsed == nil {
                let take = min(FrameHeader.size - clients[index].header.count, count - offset)
                clients[index].header += scratch[offset..<(offset + take)]
                offset += take
                guard clients[index].header.count == FrameHeader.size else { continue }
                var buffer = ByteBuffer(bytes: clients[index].header)
                clients[index].header.removeAll(keepingCapacity: true)
                guard let header = try FrameHeader.read(from: &buffer, maximumPayloadLength: FrameHeader.maximumPayloadLength) else { continue }
                clients[index].parsed = header
                clients[index].remaining = Int(header.length)
            }
            let take = min(clients[index].remaining, count - offset)
            if clients[index].parsed!.length <= Self.keptPayload { clients[index].kept += scratch[offset..<(offset + take)] }
            offset += take
            clients[index].remaining -= take
            guard clients[index].remaining == 0, let header = clients[index].parsed else { continue }
            clients[index].parsed = nil
            let frame = Frame(type: header.type, flags: header.flags, requestID: header.requestID, payload: ByteBuffer(bytes: clients[index].kept))
            clients[index].kept.removeAll(keepingCapacity: true)
            if try handle(index, frame, at: now, results: &results, announces: announces) { answered += 1 }
        }
        return answered
    }

    /// Times a reply against its request, or answers a probe; true for a timed reply.
    private func handle(_ index: Int, _ frame: Frame, at now: NIODeadline, results: inout Results, announces: AnnounceLog) throws -> Bool {
        let start = clients[index].inFlightStart
        guard start < clients[index].inFlight.count, clients[index].inFlight[start].id == frame.requestID else {
            if frame.type == .checkActive, let probe = try? CheckActive(frame: frame) {
                try enqueue(index, Array(buffer: try Active(nonce: probe.nonce).frame(requestID: frame.requestID).encoded()))
                return false
            }
            throw Failure(description: "\(LoadClient.user(index)): a \(frame.type) with request id \(frame.requestID) answers nothing sent")
        }
        let sent = clients[index].inFlight[start]
        clients[index].inFlightStart += 1
        if clients[index].inFlightStart == clients[index].inFlight.count {
            clients[index].inFlight.removeAll(keepingCapacity: true)
            clients[index].inFlightStart = 0
        }
        let latency = Double((now - sent.due).nanoseconds) / 1e6
        results.samples[sent.kind.rawValue].append(latency)
        results.timeline.append((sent.due, sent.kind, latency))
        if sent.kind == .announce && frame.type == sent.reply { announces.answered(clients[index].index, at: now) }
        guard frame.type == sent.reply || announces.raced(sent.detailsOf, sent: sent.sent, reply: frame) else {
            throw Failure(description: "\(LoadClient.user(index)): \(sent.kind.name) answered with \(Self.describe(frame))")
        }
        return true
    }

    // MARK: - Setup, blocking

    private static func connectedSocket(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw Failure(description: "connect to 127.0.0.1:\(port): \(reason)")
        }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// Writes a whole frame on a blocking socket.
    private func writeAll(_ index: Int, _ frame: Frame) throws {
        let bytes = Array(buffer: frame.encoded())
        var done = 0
        while done < bytes.count {
            let written = bytes[done...].withUnsafeBytes { Glibc.write(clients[index].fd, $0.baseAddress, $0.count) }
            guard written > 0 else { throw Failure(description: "\(LoadClient.user(index)): write: \(String(cString: strerror(errno)))") }
            done += written
        }
    }

    /// Reads one whole frame from a blocking socket.
    private func readFrame(_ index: Int) throws -> Frame {
        func readExactly(_ count: Int) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let got = bytes[done...].withUnsafeMutableBytes { Glibc.read(clients[index].fd, $0.baseAddress, $0.count) }
                guard got > 0 else {
                    throw Failure(description: "\(LoadClient.user(index)): \(got == 0 ? "the tracker closed the connection" : String(cString: strerror(errno)))")
                }
                done += got
            }
            return bytes
        }
        var buffer = ByteBuffer(bytes: try readExactly(FrameHeader.size))
        guard let header = try FrameHeader.read(from: &buffer, maximumPayloadLength: 1 << 20) else {
            throw Failure(description: "\(LoadClient.user(index)): a frame header did not parse")
        }
        return Frame(type: header.type, flags: header.flags, requestID: header.requestID,
                     payload: ByteBuffer(bytes: try readExactly(Int(header.length))))
    }

    private static func describe(_ frame: Frame) -> String {
        (try? ErrorReply(frame: frame)).map { "\($0.code): \($0.message)" } ?? "a \(frame.type)"
    }
}

/// Hands a value confined to one thread at a time to another thread.
private final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
