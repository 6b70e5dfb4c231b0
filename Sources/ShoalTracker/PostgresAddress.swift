import Foundation

/// Where a PostgreSQL database is, as `shoal tracker --db` takes it:
///
/// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` over TCP;
/// - `postgres://USER@/DB?host=/run/postgresql` (or `HOST` given
///   percent-encoded as `%2Frun%2Fpostgresql`) through the Unix socket
///   `DIR/.s.PGSQL.PORT` in that directory, as libpq does;
/// - `postgres` alone: everything from the usual environment variables
///   (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`), which also
///   fill in whatever a URL leaves out.
///
/// Defaults as libpq's: the socket directory `/var/run/postgresql`, port
/// 5432, the user `$USER`, a database named like the user. `sslmode=disable`,
/// `prefer` or `require` in the query chooses TLS over TCP (default:
/// `prefer`); a Unix socket never uses TLS. The password never appears in
/// ``description``.
public struct PostgresAddress: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The socket file itself (`DIR/.s.PGSQL.PORT`).
        case socket(path: String)
    }

    public enum TLSMode: String, Sendable, Equatable {
        case disable, prefer, require
    }

    public var endpoint: Endpoint
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(endpoint: Endpoint, user: String, password: String? = nil, database: String, tls: TLSMode = .prefer) {
        self.endpoint = endpoint
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// Whether `text` (a `--db` value) names PostgreSQL rather than a SQLite file.
    public static func isPostgres(_ text: String) -> Bool {
        text == "postgres" || text == "postgresql" || text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses a `--db` value naming PostgreSQL, with `environment` for what it leaves out.
    public init(parsing text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(TrackerError) {
        var host = environment["PGHOST"].flatMap { $0.isEmpty ? nil : $0 }
        var port = environment["PGPORT"].flatMap(Int.init)
        var user = environment["PGUSER"].flatMap { $0.isEmpty ? nil : $0 }
        var password = environment["PGPASSWORD"]
        var database = environment["PGDATABASE"].flatMap { $0.isEmpty ? nil : $0 }
        var tls = TLSMode.prefer
        let usage = "give postgres://USER@HOST:PORT/DB, postgres://USER@/DB?host=/SOCKET/DIR, or postgres alone to use PGHOST, PGPORT, PGUSER and PGDATABASE"
        if text != "postgres" && text != "postgresql" {
            guard Self.isPostgres(text), let url = URLComponents(string: text) else {
                throw .badRequest("--db \(text.debugDescription) is not a PostgreSQL URL; \(usage)")
            }
            if let given = url.percentEncodedHost, !given.isEmpty {
                host = given.removingPercentEncoding ?? given
            }
            if let given = url.port { port = given }
            if let given = url.user, !given.isEmpty { user = given }
            if let given = url.password { password = given }
            let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
            if !path.isEmpty { database = path }
            for item in url.queryItems ?? [] {
                switch item.name {
                case "host": host = item.value
                case "port": port = item.value.flatMap(Int.init) ?? port
                case "user": user = item.value
                case "password": password = item.value
                case "dbname": database = item.value
                case "sslmode":
                    switch item.value {
                    case "disable", "allow": tls = .disable
                    case "prefer": tls = .prefer
                    case "require", "verify-ca", "verify-full": tls = .require
                    default: throw .badRequest("--db: sslmode \(item.value ?? "").debugDescription) is not one of disable, prefer, require")
                    }
                default:
                    throw .badRequest("--db: the parameter \(item.name.debugDescription) is not one the tracker knows (host, port, user, password, dbname, sslmode)")
                }
            }
        }
        let resolvedPort = port ?? 5432
        guard (1...65_535).contains(resolvedPort) else { throw .badRequest("--db: port \(resolvedPort) is not a TCP port (1 ... 65535)") }
        let resolvedUser = user ?? environment["USER"] ?? "postgres"
        let resolvedHost = host ?? "/var/run/postgresql"
        self.endpoint = resolvedHost.hasPrefix("/")
            ? .socket(path: (resolvedHost as NSString).appendingPathComponent(".s.PGSQL.\(resolvedPort)"))
            : .tcp(host: resolvedHost, port: resolvedPort)
        self.user = resolvedUser
        self.password = password
        self.database = database ?? resolvedUser
        self.tls = tls
    }

    public var description: String {
        switch endpoint {
        case let .tcp(host, port):
            let shown = host.contains(":") ? "[\(host)]" : host
            return "postgres://\(user)@\(shown):\(port)/\(database)"
        case let .socket(path):
            return "postgres://\(user)@/\(database) (socket \(path))"
        }
    }
}
