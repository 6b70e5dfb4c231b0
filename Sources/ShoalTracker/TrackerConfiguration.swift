import Foundation
import Metrics
import ShoalNet

/// Where a tracker listens, where it keeps its database, and its limits.
public struct TrackerConfiguration: Sendable {
    /// The address peers reach the tracker on by default.
    public static let defaultHost = "127.0.0.1"
    /// The tracker's well-known port.
    public static let defaultPort = 6969
    /// The database file, relative to the working directory.
    public static let defaultDatabasePath = "tracker.sqlite"

    public var host: String
    public var port: Int
    /// The SQLite database file; with ``postgres`` set, only the base name
    /// the operator token and certificate files are kept beside.
    public var databasePath: String
    /// Keep accounts and the live registry in this PostgreSQL database
    /// instead of the SQLite file (`--db postgres://…`).
    public var postgres: PostgresAddress?
    /// This tracker process's name among those sharing a database: the owner of the sessions it opens.
    public var instance = UUID().uuidString.lowercased()
    /// How long a stored session outlives its instance's last lease renewal
    /// (seconds): an instance that dies loses its sessions on the others
    /// within this time. Renewed every third of it.
    public var leaseSeconds: Double = 15
    /// How often an instance on a shared store reads every other
    /// instance's session back, in case it missed a change notification (seconds).
    public var resyncInterval: Double = 5
    /// Called after each store operation with its duration (for store-latency metrics); nil: not timed.
    public var storeTiming: StoreTiming?
    /// A connection quiet this long is probed with `checkActive` (seconds).
    public var probeInterval: Double = 30
    /// A probe unanswered this long drops the connection and its session (seconds).
    public var probeTimeout: Double = 10
    /// A connection must send its `hello` within this time of being accepted (seconds).
    public var handshakeTimeout: Double = 10
    /// A connection that has not logged in is closed after this time (seconds).
    public var anonymousTimeout: Double = 120
    /// Connections served at once; more get `busy`.
    public var maximumConnections = 1024
    /// The largest frame from a connection without a session (bytes).
    public var anonymousFrameLimit = 64 * 1024
    /// PBKDF2 rounds for new password hashes.
    public var passwordRounds = PasswordHasher.defaultRounds
    /// What one session may make the tracker remember.
    public var limits = TrackerRegistry.Limits()
    /// How failed logins are slowed down.
    public var loginThrottle = LoginThrottle()
    /// How fast one source address may create accounts.
    public var registrationThrottle = RegistrationThrottle()
    /// How much a report moves a holder's counters.
    public var reputation = ReputationRule()
    /// Where the operator token for `status` is written at start (mode
    /// 0600); nil: beside the database, as `DATABASE-operator-token`.
    public var operatorTokenPath: String?

    /// The operator token file this tracker writes.
    public var operatorTokenFile: String { operatorTokenPath ?? Self.operatorTokenPath(forDatabase: databasePath) }

    /// The operator token file of a tracker whose database is `databasePath`.
    public static func operatorTokenPath(forDatabase databasePath: String) -> String {
        databasePath + "-operator-token"
    }

    /// Where the tracker's counters and timings go (``TrackerMetrics``);
    /// nil: `MetricsSystem.factory`. `shoal tracker --http` gives a Prometheus one.
    public var metricsFactory: (any MetricsFactory)?

    /// How connections are carried: TLS (the default for `shoal tracker`) or in clear (`--insecure`).
    public var transport = Transport.plain
    /// Refuse serving peers that do not announce a key fingerprint (`--require-encryption`).
    public var requireEncryption = false

    /// In clear, or TLS with a certificate.
    public enum Transport: Sendable {
        case plain
        /// A certificate and key at these paths; made (self-signed) when neither exists.
        case tls(certificatePath: String, keyPath: String)
        /// This identity (tests, benchmarks).
        case identity(TLSIdentity)
    }

    /// Where the tracker keeps its own certificate and key: beside the database.
    public var defaultCertificatePaths: (certificate: String, key: String) {
        let base = (databasePath as NSString).deletingPathExtension
        return (base + "-cert.pem", base + "-key.pem")
    }

    public init(host: String = defaultHost, port: Int = defaultPort, databasePath: String = defaultDatabasePath) {
        self.host = host
        self.port = port
        self.databasePath = databasePath
    }
}
