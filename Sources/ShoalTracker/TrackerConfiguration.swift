/// Where a tracker listens and keeps its database.
public struct TrackerConfiguration: Sendable, Equatable {
    /// The address peers reach the tracker on by default.
    public static let defaultHost = "127.0.0.1"
    /// The tracker's well-known port.
    public static let defaultPort = 6969
    /// The database file, relative to the working directory.
    public static let defaultDatabasePath = "tracker.sqlite"

    public var host: String
    public var port: Int
    public var databasePath: String

    public init(host: String = defaultHost, port: Int = defaultPort, databasePath: String = defaultDatabasePath) {
        self.host = host
        self.port = port
        self.databasePath = databasePath
    }
}
