#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A TCP relay on 127.0.0.1 that forwards every connection to a target port
/// and records every byte that crosses it, both ways: what anyone on the
/// path between a peer and the tracker could read (a capture without
/// tshark). Blocking sockets, a thread per direction. Stop it with ``stop()``.
public final class RecordingRelay: @unchecked Sendable {
    /// The port clients connect to instead of the target's.
    public let port: Int
    private let targetPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var toTarget: [UInt8] = []
    private var fromTarget: [UInt8] = []
    private var sockets: [Int32] = []
    private var swallowing = false

    public init(targetPort: Int) throws {
        self.targetPort = targetPort
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw POSIXError(.EMFILE) }
        self.listener = listener
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else {
            close(listener)
            throw POSIXError(.EADDRINUSE)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        Thread { self.acceptLoop() }.start()
    }

    /// Every byte clients sent towards the target so far.
    public var clientBytes: [UInt8] { lock.withLock { toTarget } }
    /// Every byte the target sent back so far.
    public var serverBytes: [UInt8] { lock.withLock { fromTarget } }

    /// Whether `text` appears, as UTF-8, in the bytes of either direction.
    public func saw(_ text: String) -> Bool {
        let needle = Array(text.utf8)
        return Self.contains(clientBytes, needle) || Self.contains(serverBytes, needle)
    }

    /// From now on, what either side sends is read and dropped, never
    /// forwarded: the connections stay open and nothing more arrives, as
    /// when the network between the two goes silent.
    public func swallow() {
        lock.withLock { swallowing = true }
    }

    /// Stops accepting and closes every relayed connection.
    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        // Under the lock: a socket is taken out of the list before it is closed, so no reused descriptor is shut here.
        lock.withLock { for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            let target = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: targetPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(target, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(client)
                close(target)
                continue
            }
            lock.withLock { sockets += [client, target] }
            let finished = Atomic2()
            Thread { self.pump(from: client, to: target, towardsTarget: true, finished: finished) }.start()
            Thread { self.pump(from: target, to: client, towardsTarget: false, finished: finished) }.start()
        }
    }

    /// Copies one direction, recording each read before forwarding it.
    private func pump(from source: Int32, to destination: Int32, towardsTarget: Bool, finished: Atomic2) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            let swallowed = lock.withLock {
                if towardsTarget { toTarget += buffer[0..<n] } else { fromTarget += buffer[0..<n] }
                return swallowing
            }
            if swallowed { continue }
            var sent = 0
            while sent < n {
                let m = buffer[sent..<n].withUnsafeBytes { send(destination, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard m > 0 else { break }
                sent += m
            }
        }
        shutdown(destination, Int32(SHUT_WR))
        // The second direction to finish closes both sockets.
        if finished.arrive() {
            lock.withLock { sockets.removeAll { $0 == source || $0 == destination } }
            close(source)
            close(destination)
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}

/// Counts the two directions of a relayed connection as they end.
private final class Atomic2: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    /// Whether this is the second arrival.
    func arrive() -> Bool { lock.withLock { count += 1; return count == 2 } }
}
