/// An account as the tracker keeps it. The password exists only as a salted
/// slow hash (``PasswordHasher``) and never leaves the store; printing an
/// account never shows it.
public struct Account: Sendable, Equatable {
    public var user: String
    public var passwordHash: String
    /// Downloads served to others that succeeded.
    public var countDownloads: Int
    /// Downloads served to others that failed (as ``ReputationRule`` counts them).
    public var countFailures: Int
    /// Verified bytes others received from this account's peer.
    public var bytesServed: UInt64

    public init(user: String, passwordHash: String, countDownloads: Int = 0, countFailures: Int = 0, bytesServed: UInt64 = 0) {
        self.user = user
        self.passwordHash = passwordHash
        self.countDownloads = countDownloads
        self.countFailures = countFailures
        self.bytesServed = bytesServed
    }

    /// The counters alone.
    public var counters: AccountCounters {
        AccountCounters(user: user, countDownloads: countDownloads, countFailures: countFailures, bytesServed: bytesServed)
    }
}

extension Account: CustomStringConvertible, CustomDebugStringConvertible {
    /// Never the password hash: an account printed into a log or an error stays harmless.
    public var description: String {
        "Account(user: \(user.debugDescription), passwordHash: <redacted>, countDownloads: \(countDownloads), countFailures: \(countFailures), bytesServed: \(bytesServed))"
    }
    public var debugDescription: String { description }
}

/// An account's public counters: what `details`, `reported` and `status` show.
public struct AccountCounters: Sendable, Equatable {
    public var user: String
    public var countDownloads: Int
    public var countFailures: Int
    public var bytesServed: UInt64

    public init(user: String, countDownloads: Int, countFailures: Int, bytesServed: UInt64) {
        self.user = user
        self.countDownloads = countDownloads
        self.countFailures = countFailures
        self.bytesServed = bytesServed
    }
}

/// A report the tracker has authorized (its download id checked) and stores.
public struct ReportRecord: Sendable, Equatable {
    public var reporter: String
    public var holder: String
    /// The content id, hex.
    public var contentID: String
    public var succeeded: Bool
    /// At most the file's size.
    public var bytes: UInt64
    /// When it was made (Unix seconds).
    public var at: Double

    public init(reporter: String, holder: String, contentID: String, succeeded: Bool, bytes: UInt64, at: Double) {
        self.reporter = reporter
        self.holder = holder
        self.contentID = contentID
        self.succeeded = succeeded
        self.bytes = bytes
        self.at = at
    }
}
