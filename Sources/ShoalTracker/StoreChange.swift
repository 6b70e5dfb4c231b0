import ShoalCore

/// One change to the live registry or to counters, as a shared store
/// announces it to every tracker instance on the database (PostgreSQL:
/// `NOTIFY shoal_registry`, sent in the transaction that made the change).
///
/// The payload is small and names only what to read again, never the data:
/// `KIND WRITER KEY`, e.g. `session 3f2a…-instance 9c1e…token`,
/// `counters 3f2a…-instance maria`. An instance skips the changes it wrote
/// itself (it made them in its own registry first), except expiries, which
/// any instance may write about any instance's sessions.
public struct StoreChange: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A session was opened, or its holdings changed: read it again.
        case session
        /// A session was closed (logout, dropped connection, replaced by a login elsewhere).
        case closed
        /// A session's lease ran out, and an instance deleted it.
        case expired
        /// An account's counters may have moved (a report about it was taken).
        case counters
    }

    public var kind: Kind
    /// The instance whose store wrote the change.
    public var writer: String
    /// The session token (``Kind/session``, ``Kind/closed``, ``Kind/expired``) or the user name (``Kind/counters``).
    public var key: String

    public init(kind: Kind, writer: String, key: String) {
        self.kind = kind
        self.writer = writer
        self.key = key
    }

    /// Parses a notification's payload; nil if it is not one.
    public init?(payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let kind = Kind(rawValue: String(parts[0])), !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        self.init(kind: kind, writer: String(parts[1]), key: String(parts[2]))
    }

    /// The payload it is sent as.
    public var payload: String { "\(kind.rawValue) \(writer) \(key)" }

    /// The session it is about, unless it is about counters.
    public var token: SessionToken? { kind == .counters ? nil : SessionToken(value: key) }
}
