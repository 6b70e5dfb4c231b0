import NIOCore

/// Slows down password guessing, per user name **and** source address: after
/// ``freeAttempts`` failed logins for one name from one source, each further
/// attempt from that source must wait after the previous failure, the wait
/// doubling with each failure (``baseDelay``: 1 s, 2 s, 4 s ... up to
/// ``maximumDelay``). A success clears that
/// source's record.
///
/// Race-free: ``begin(user:address:now:)`` checks the wait and reserves the
/// attempt in one step, counting it as a failure until ``succeeded(user:address:)``
/// says otherwise. The ``Tracker`` actor calls it before it starts the
/// (slow, off-actor) password hash, so N connections sent at once get at most
/// ``freeAttempts`` guesses between them, not N.
///
/// Not a lockout tool: failures from one source never slow down the same
/// name from another, so an attacker cannot keep the real user out. IPv6
/// sources count by their /64 prefix (one host or one customer network), so
/// a host cannot get fresh attempts by cycling through its own addresses.
///
/// A value fed events with the time passed in, so it is tested without
/// sleeping. Bounded: it forgets the oldest records past ``capacity``.
public struct LoginThrottle: Sendable {
    public var freeAttempts: Int
    public var baseDelay: Double
    public var maximumDelay: Double
    public var capacity: Int

    private struct Key: Hashable, Sendable {
        var user: String
        var source: String
    }

    private struct Record: Sendable {
        var failures: Int
        var lastFailure: Double
    }

    private var records: [Key: Record] = [:]

    public init(freeAttempts: Int = 5, baseDelay: Double = 1, maximumDelay: Double = 300, capacity: Int = 100_000) {
        self.freeAttempts = freeAttempts
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
        self.capacity = capacity
    }

    /// Seconds `user` must still wait before trying again from `address` at time `now`, or 0.
    public func wait(user: String, address: String, now: Double) -> Int {
        guard let record = records[Self.key(user, address)], record.failures >= freeAttempts else { return 0 }
        let delay = min(maximumDelay, baseDelay * Double(1 << min(record.failures - freeAttempts, 20)))
        let remaining = record.lastFailure + delay - now
        return remaining > 0 ? Int(remaining.rounded(.up)) : 0
    }

    /// Starts a login attempt: returns the seconds to wait (the attempt is
    /// refused) or 0, in which case the attempt is recorded as a failure
    /// right away, before any password is checked.
    public mutating func begin(user: String, address: String, now: Double) -> Int {
        let wait = wait(user: user, address: address, now: now)
        guard wait == 0 else { return wait }
        failed(user: user, address: address, now: now)
        return 0
    }

    /// Records a failed login for `user` from `address` at `now`.
    public mutating func failed(user: String, address: String, now: Double) {
        let key = Self.key(user, address)
        if records[key] == nil && records.count >= capacity {
            // Forget the oldest failure to stay bounded.
            if let oldest = records.min(by: { $0.value.lastFailure < $1.value.lastFailure })?.key {
                records.removeValue(forKey: oldest)
            }
        }
        var record = records[key] ?? Record(failures: 0, lastFailure: now)
        record.failures += 1
        record.lastFailure = max(record.lastFailure, now)
        records[key] = record
    }

    /// An attempt ``begin(user:address:now:)`` let through has failed at
    /// `now`: the wait runs from here (the hash took time), not from its start.
    public mutating func attemptFailed(user: String, address: String, now: Double) {
        let key = Self.key(user, address)
        if let record = records[key] { records[key]!.lastFailure = max(record.lastFailure, now) }
    }

    /// Records a successful login from `address`: that source's slate is clean.
    public mutating func succeeded(user: String, address: String) {
        records.removeValue(forKey: Self.key(user, address))
    }

    /// The number of (name, source) pairs with failures on record.
    public var trackedNames: Int { records.count }

    /// What a source address counts as: an IPv4 address (or name) as it is,
    /// an IPv6 address by its first 64 bits.
    public static func source(of address: String) -> String {
        guard address.contains(":"),
              let literal = address.split(separator: "%").first,
              case let .v6(v6)? = try? SocketAddress(ipAddress: String(literal), port: 0) else { return address }
        let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return bytes[12..<16].map(String.init).joined(separator: ".")
        }
        return bytes[0..<8].map { String($0, radix: 16) }.joined(separator: ":") + "::/64"
    }

    private static func key(_ user: String, _ address: String) -> Key {
        Key(user: user, source: source(of: address))
    }
}
