/// An account as the tracker keeps it. The password exists only as a salted
/// slow hash (``PasswordHasher``) and never leaves the store.
public struct Account: Sendable, Equatable {
    public var user: String
    public var passwordHash: String
    /// Downloads served to others that succeeded.
    public var countDownloads: Int
    /// Downloads served to others that failed.
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
}

/// Where accounts and their counters persist: the boundary between the
/// tracker and its database (``SQLiteAccountStore`` is the real one).
/// Implementations are called off the event loop and may block.
public protocol AccountStore: Sendable {
    /// Creates an account; throws ``TrackerError/nameTaken(_:)`` if the name exists.
    func create(_ account: Account) throws(TrackerError)
    /// The account named `user`, if any.
    func account(named user: String) throws(TrackerError) -> Account?
    /// Adds a transfer outcome to `user`'s counters and returns the new account.
    func recordTransfer(holder user: String, succeeded: Bool, bytes: UInt64) throws(TrackerError) -> Account?
    /// The number of registered accounts.
    func count() throws(TrackerError) -> Int
    /// Every account, by name (for the operator's status view).
    func all() throws(TrackerError) -> [Account]
}
