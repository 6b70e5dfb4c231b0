#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A plain blocking TCP socket on loopback, for tests that must send bytes no
/// well-behaved client would (garbage, half frames) or just sit idle.
public final class RawSocket: @unchecked Sendable {
    private var fd: Int32

    /// Connects to 127.0.0.1:`port`; reads time out after `timeout` seconds.
    public init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            // Every property is set, so throwing runs deinit, which closes
            // `fd` unless it is -1. Closed here and again there, the second
            // close hit whatever had reused the number meanwhile: another
            // test's NIO socket (a crash in NIO's selector, connections lost).
            Glibc.close(fd)
            fd = -1
            throw POSIXError(.ECONNREFUSED)
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    public func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// ``readUntilClosed()`` on a thread of its own, so the blocking read never
    /// holds one of the few threads Swift concurrency (and Dispatch's global
    /// queues, which it runs on under Linux) has.
    public func readUntilClosedAsync() async -> (bytes: [UInt8], closed: Bool) {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: self.readUntilClosed()) }
            thread.start()
        }
    }

    /// Like ``readUntilClosedAsync()``, but also stops as soon as `done`
    /// says the bytes so far are enough (say, the reply the test waits for).
    public func readUntilAsync(_ done: @escaping @Sendable ([UInt8]) -> Bool) async -> (bytes: [UInt8], closed: Bool) {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: self.readUntilClosed(done: done)) }
            thread.start()
        }
    }

    /// Reads until the other side closes or the timeout passes; returns the
    /// bytes and whether the connection was closed by the other side.
    /// Blocks: from async code use ``readUntilClosedAsync()``.
    public func readUntilClosed(done: ([UInt8]) -> Bool = { _ in false }) -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (out, true) }
            if n < 0 { return (out, errno == ECONNRESET) }
            out += buffer[0..<n]
            if done(out) { return (out, false) }
        }
    }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
