#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// The login throttle over real connections: parallel attempts get no more
/// guesses than serial ones, and failures from one address do not keep the
/// real user out from another.
@Suite("Login throttle over the network", .timeLimit(.minutes(2)))
struct LoginRaceTests {
    /// 20 connections from one address send a wrong password at once, while
    /// the password hash is slow: exactly 5 are checked, 15 are refused with
    /// `too_many_attempts` before any hashing. (Before: the wait was checked
    /// before the hash and the failure recorded after it, so all 20 were
    /// guesses.) Meanwhile the real user logs in from another address.
    @Test(arguments: TestStore.allCases) func parallelGuessesAreThrottledPerSource(store: TestStore) async throws {
        // A long wait, so that a slow machine does not see it run out mid-test.
        let tracker = try await TestTracker.start(store: store, tls: false) {
            $0.passwordRounds = 20_000
            $0.loginThrottle = LoginThrottle(baseDelay: 120)
        }
        let setup = try await tracker.connect()
        try await setup.register("target", "the-right-one")
        setup.close()

        let codes = await withTaskGroup(of: String.self) { group in
            for i in 0..<20 {
                group.addTask { await Self.login(from: "127.0.0.2", port: tracker.port, user: "target", password: "guess-\(i)") }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(codes.filter { $0 == "bad_credentials" }.count == 5, "\(codes.sorted())")
        #expect(codes.filter { $0 == "too_many_attempts" }.count == 15, "\(codes.sorted())")
        // Still throttled from there, even with the right password...
        #expect(await Self.login(from: "127.0.0.2", port: tracker.port, user: "target", password: "the-right-one") == "too_many_attempts")
        // ...but the real user, elsewhere, is not locked out.
        #expect(await Self.login(from: "127.0.0.1", port: tracker.port, user: "target", password: "the-right-one") == "ok")
        #expect(tracker.log.contains("throttled"))
        await tracker.stopAndRemove()
    }

    /// Sources count by IPv4 address and by IPv6 /64.
    @Test func sources() {
        #expect(LoginThrottle.source(of: "127.0.0.2") == "127.0.0.2")
        #expect(LoginThrottle.source(of: "2001:db8:1:2:aaaa::1") == LoginThrottle.source(of: "2001:db8:1:2:bbbb::9"))
        #expect(LoginThrottle.source(of: "2001:db8:1:2::1") != LoginThrottle.source(of: "2001:db8:1:3::1"))
        #expect(LoginThrottle.source(of: "::ffff:198.18.0.7") == "198.18.0.7")
    }

    /// Logs in over a fresh connection whose source address is `source`:
    /// "ok", or the refusal's code. Blocking socket I/O on a thread of its own.
    static func login(from source: String, port: Int, user: String, password: String) async -> String {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: loginBlocking(from: source, port: port, user: user, password: password)) }.start()
        }
    }

    private static func loginBlocking(from source: String, port: Int, user: String, password: String) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "socket failed" }
        defer { close(fd) }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafePointer(to: &local, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }) == 0,
              withUnsafePointer(to: &remote, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) } }) == 0 else {
            return "cannot connect from \(source): errno \(errno)"
        }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let hello = try? Hello(role: "peer", software: "test").frame(requestID: 0).encoded(),
              let login = try? Message.login(Login(user: user, password: password, port: 0)).frame(requestID: 1).encoded() else { return "encoding failed" }
        let bytes = Array(buffer: hello) + Array(buffer: login)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else { return "send failed" }
        var decoder = FrameDecoder()
        var buffer = ByteBuffer()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            while let frame = try? decoder.decodeFrame(&buffer) {
                guard frame.requestID == 1, let message = try? Message(frame: frame) else { continue }
                switch message {
                case .loggedIn: return "ok"
                case let .error(reply): return reply.code.rawValue
                default: return "unexpected \(message.type)"
                }
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return "closed before the reply" }
            buffer.writeBytes(chunk[0..<n])
        }
    }
}

/// Free accounts cost time: one address registers a burst, then is told to wait.
@Suite("Registration throttle")
struct RegistrationThrottleTests {
    @Test func aBurstThenOnePerInterval() {
        var throttle = RegistrationThrottle(burst: 3, interval: 60)
        for _ in 0..<3 { #expect(throttle.take(address: "10.0.0.1", now: 0) == 0) }
        #expect(throttle.take(address: "10.0.0.1", now: 0) == 60)
        #expect(throttle.take(address: "10.0.0.2", now: 0) == 0, "another address has its own bucket")
        #expect(throttle.take(address: "10.0.0.1", now: 30) == 30)
        #expect(throttle.take(address: "10.0.0.1", now: 61) == 0, "one more after the interval")
        // An IPv6 host counts by its /64: cycling through its addresses gets nothing new.
        for i in 0..<3 { #expect(throttle.take(address: "2001:db8::\(i + 1)", now: 0) == 0) }
        #expect(throttle.take(address: "2001:db8::ffff", now: 0) > 0)
        #expect(throttle.take(address: "2001:db8:0:1::1", now: 0) == 0)
        // A registration that made no account is given back.
        throttle.refund(address: "10.0.0.2")
        for _ in 0..<3 { #expect(throttle.take(address: "10.0.0.2", now: 0) == 0) }
    }

    /// Over the wire: the burst, then `too_many_attempts` with the wait; a taken name costs nothing.
    @Test(arguments: TestStore.allCases) func theTrackerRefusesTheRest(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store) { $0.registrationThrottle = RegistrationThrottle(burst: 3, interval: 600) }
        let client = try await tracker.connect()
        try await client.register("first")
        #expect(await refusalCode { try await client.register("first") } == "name_taken")
        try await client.register("second")
        try await client.register("third")
        let message = await refusalMessage { try await client.register("fourth") }
        #expect(message?.hasPrefix("too many accounts were registered from your address lately; wait ") == true, "\(message ?? "none")")
        let wait = message.flatMap { Int($0.split(separator: " ").first { Int($0) != nil } ?? "") } ?? 0
        #expect(wait > 500 && wait <= 600, "the wait is the rest of one interval: \(message ?? "none")")
        #expect(await refusalCode { _ = try await client.login("first", "wrong") } == "bad_credentials", "logins are not affected")
        client.close()
        await tracker.stopAndRemove()
    }
}
