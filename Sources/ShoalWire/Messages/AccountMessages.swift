/// `register`: create an account. Answered by `registered` or an error
/// (`name_taken`, `invalid_name`, `bad_request`).
public struct Register: ControlMessage {
    public static let messageType = MessageType.register
    public var user: String
    public var password: String
    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }
}

/// `registered`: the account exists now.
public struct Registered: ControlMessage {
    public static let messageType = MessageType.registered
    public var user: String
    public init(user: String) { self.user = user }
}

/// `login`: open a session. `port` is where the peer serves chunks (0 if it
/// does not serve); the tracker pairs it with the connection's source address,
/// or with `host` when the peer advertises one (behind port forwarding, say).
/// Answered by `loggedIn` or an error (`bad_credentials`, `too_many_attempts`,
/// `bad_request` for an address that cannot be handed out, a malformed key
/// fingerprint, or none where the tracker requires encryption).
public struct Login: ControlMessage {
    public static let messageType = MessageType.login
    public var user: String
    public var password: String
    public var port: Int
    /// The address downloaders should connect to, if not the source address.
    public var host: String?
    /// The SHA-256 fingerprint (64 hex digits) of the certificate this peer
    /// serves chunks with over TLS (`--encrypt`); absent: it serves in clear.
    public var keyFingerprint: String?
    public init(user: String, password: String, port: Int, host: String? = nil, keyFingerprint: String? = nil) {
        self.user = user
        self.password = password
        self.port = port
        self.host = host
        self.keyFingerprint = keyFingerprint
    }
}

/// `loggedIn`: the session token every later request carries, and the
/// account's counters.
public struct LoggedIn: ControlMessage {
    public static let messageType = MessageType.loggedIn
    /// At least 128 random bits, hex-encoded.
    public var token: String
    public var user: String
    public var countDownloads: Int
    public var countFailures: Int
    public init(token: String, user: String, countDownloads: Int, countFailures: Int) {
        self.token = token
        self.user = user
        self.countDownloads = countDownloads
        self.countFailures = countFailures
    }
}

/// `logout`: end the session; the peer's holdings are withdrawn.
public struct Logout: ControlMessage {
    public static let messageType = MessageType.logout
    public var token: String
    public init(token: String) { self.token = token }
}

/// `loggedOut`: the session is over.
public struct LoggedOut: ControlMessage {
    public static let messageType = MessageType.loggedOut
    public init() {}
}
