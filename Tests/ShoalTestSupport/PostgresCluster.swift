#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ShoalTracker
import Synchronization

/// A throw-away PostgreSQL server for the tests: Debian's binaries
/// (`/usr/lib/postgresql/VERSION/bin`), a cluster made by `initdb` in a
/// temporary folder, listening on a Unix socket in that folder and on a free
/// loopback port. One per test process, started by the first test that asks
/// (``shared()``); each test gets a database of its own (``database(named:)``).
///
/// The server is stopped and its folder deleted when the test process
/// exits, whether its tests passed or failed (an `atexit` handler); a
/// cluster left by a process that crashed is stopped and deleted by the
/// next test run. PostgreSQL refuses to run as root, so when the tests run
/// as root (as CI does) its tools run as the `postgres` system user, through
/// `setpriv`, on a folder owned by that user.
///
/// Without PostgreSQL installed, ``shared()`` throws an error that names the
/// Debian package: the tests that need it fail, they never pass or skip.
public final class PostgresCluster: Sendable {
    /// Where `initdb`, `pg_ctl` and `psql` are.
    public let binaries: String
    /// The cluster's folder: `data/`, `socket/`, `server.log`, `owner.pid`.
    public let root: String
    /// The directory of the server's Unix socket.
    public var socketDirectory: String { root + "/socket" }
    /// Its loopback TCP port (also the number in the socket's name).
    public let port: Int
    /// The database superuser the tests connect as (trust authentication).
    public let user = "postgres"
    /// The system user the server runs as when the tests run as root.
    private let runAs: String?

    private init(binaries: String, root: String, port: Int, runAs: String?) {
        self.binaries = binaries
        self.root = root
        self.port = port
        self.runAs = runAs
    }

    /// What a test is told when PostgreSQL is missing.
    public static let missingAdvice = "PostgreSQL is not installed: the tests of the PostgreSQL store need Debian's `postgresql` package (apt-get install postgresql; .ci/run installs it when missing)"

    private static let starting = Mutex<Task<PostgresCluster, any Error>?>(nil)

    /// The cluster of this test process, started on first use.
    public static func shared() async throws -> PostgresCluster {
        let task = starting.withLock { task in
            if let task { return task }
            let new = Task { try await onThread { try PostgresCluster.start() } }
            task = new
            return new
        }
        return try await task.value
    }

    /// The newest `BASE/VERSION/bin` with `initdb` in it (Debian's layout
    /// under `/usr/lib/postgresql`), if any.
    public static func findBinaries(under base: String = "/usr/lib/postgresql") -> String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        return versions.compactMap(Int.init).sorted(by: >).map { "\(base)/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }

    private static func start() throws -> PostgresCluster {
        guard let binaries = findBinaries() else { throw ClusterError(missingAdvice) }
        removeAbandonedClusters()
        let root = base + "shoal-pgcluster-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: root + "/socket", withIntermediateDirectories: true)
        try "\(getpid())".write(toFile: root + "/owner.pid", atomically: true, encoding: .utf8)
        let runAs: String? = getuid() == 0 ? "postgres" : nil
        if let runAs {
            try run("/bin/chown", ["-R", "\(runAs):", root])
            try run("/bin/chmod", ["0755", root])
        }
        let cluster = PostgresCluster(binaries: binaries, root: root, port: try freePort(), runAs: runAs)
        registerCleanup(cluster)
        try cluster.tool("initdb", ["-D", root + "/data", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C", "-U", cluster.user])
        // Durability is not what these tests are about: no fsync, so a test's writes cost what the server's work costs.
        let options = "-k \(cluster.socketDirectory) -p \(cluster.port) -c listen_addresses=127.0.0.1 -c max_connections=400 "
            + "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        try cluster.tool("pg_ctl", ["-D", root + "/data", "-l", root + "/server.log", "-o", options, "-w", "-t", "60", "start"])
        return cluster
    }

    /// The address of database `name` through the Unix socket.
    public func address(of name: String) -> PostgresAddress {
        PostgresAddress(endpoint: .socket(path: socketDirectory + "/.s.PGSQL.\(port)"), user: user, database: name, tls: .disable)
    }

    /// A `--db` URL for database `name` over loopback TCP.
    public func tcpURL(of name: String) -> String { "postgres://\(user)@127.0.0.1:\(port)/\(name)?sslmode=disable" }

    /// A `--db` URL for database `name` through the Unix socket.
    public func socketURL(of name: String) -> String { "postgres://\(user)@/\(name)?host=\(socketDirectory)&port=\(port)" }

    /// Makes database `name` unless it exists; returns its address.
    @discardableResult
    public func database(named name: String) async throws -> PostgresAddress {
        precondition(name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }, "a plain database name")
        let exists = try await sql("SELECT 1 FROM pg_database WHERE datname = '\(name)'")
        if !exists.contains("1") { _ = try await sql("CREATE DATABASE \(name)") }
        return address(of: name)
    }

    /// A new database with a fresh name.
    public func newDatabase() async throws -> PostgresAddress {
        try await database(named: "shoal_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased())
    }

    /// Drops database `name`, disconnecting whoever still uses it.
    public func drop(_ name: String) async throws {
        _ = try await sql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs `statement` with psql in the `postgres` database; its output, unaligned.
    public func sql(_ statement: String, database: String = "postgres") async throws -> String {
        let (binaries, socket, port, user) = (binaries, socketDirectory, port, user)
        return try await onThread {
            try Self.run(binaries + "/psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", socket, "-p", "\(port)", "-U", user,
                                              "-d", database, "-c", statement])
        }
    }

    // MARK: Running tools

    /// Runs one of the cluster's tools, as the `postgres` user when we are root.
    private func tool(_ name: String, _ arguments: [String]) throws {
        if let runAs {
            try Self.run("/usr/bin/setpriv", ["--reuid=\(runAs)", "--regid=\(runAs)", "--init-groups", "--", binaries + "/" + name] + arguments)
        } else {
            try Self.run(binaries + "/" + name, arguments)
        }
    }

    /// Runs a program to its end (on the calling thread, which must be one of
    /// its own: see ``onThread(_:)``); its standard output, or an error with
    /// both outputs. Spawned and awaited with `posix_spawn` and `waitpid`,
    /// with no descriptor of ours but its output files: `pg_ctl start` leaves a server running that inherits
    /// what `pg_ctl` had open, so a pipe (or Foundation's `Process`, which
    /// watches its child through a descriptor of its own) would wait for the
    /// server to end, not `pg_ctl`.
    @discardableResult
    static func run(_ program: String, _ arguments: [String]) throws -> String {
        let base = NSTemporaryDirectory() + "shoal-pgtool-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        // Nothing else of ours: a server started by `pg_ctl` would keep every
        // descriptor it inherited open for its whole life, the sockets of
        // other tests' trackers among them (which then never close).
        guard let closeFrom = addCloseFrom else { throw ClusterError("this C library lacks posix_spawn_file_actions_addclosefrom_np (glibc 2.34 or later has it)") }
        _ = closeFrom(&actions, 3)
        let argv: [UnsafeMutablePointer<CChar>?] = ([program] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, program, &actions, nil, argv, environ)
        guard spawned == 0 else { throw ClusterError("cannot run \(program): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        // Exited normally with 0: the low 7 bits (the signal) and the exit code both 0.
        guard status == 0 else {
            let errorText = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
            throw ClusterError("\((program as NSString).lastPathComponent) \(arguments.joined(separator: " ")) failed (wait status \(status)): \(errorText)\(text)")
        }
        return text
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np`, which its header
    /// declares only for `_GNU_SOURCE` (so Swift's Glibc module does not show it).
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClusterError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw ClusterError("bind() failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    // MARK: Cleaning up

    /// Where clusters are made: the temporary directory, or `/tmp/` when the
    /// tests run as root (a `$TMPDIR` of root's may be closed to the `postgres` user).
    private static var base: String { getuid() == 0 ? "/tmp/" : NSTemporaryDirectory() }

    private static let toStop = Mutex<[PostgresCluster]>([])

    private static func registerCleanup(_ cluster: PostgresCluster) {
        let first = toStop.withLock { list in
            list.append(cluster)
            return list.count == 1
        }
        if first { atexit { PostgresCluster.stopAll() } }
    }

    /// Stops every cluster this process started and deletes its folder.
    static func stopAll() {
        for cluster in toStop.withLock({ list in defer { list = [] }; return list }) { cluster.stopAndDelete() }
    }

    /// Stops the server at once (nothing in it is kept) and deletes the folder.
    func stopAndDelete() {
        try? tool("pg_ctl", ["-D", root + "/data", "-m", "immediate", "-w", "-t", "30", "stop"])
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Stops and deletes the clusters of test processes that no longer run.
    private static func removeAbandonedClusters() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where name.hasPrefix("shoal-pgcluster-") {
            let root = base + name
            guard let text = try? String(contentsOfFile: root + "/owner.pid", encoding: .utf8), let pid = Int32(text),
                  kill(pid, 0) != 0 && errno == ESRCH else { continue }
            let owner = (try? FileManager.default.attributesOfItem(atPath: root))?[.ownerAccountName] as? String
            let stale = PostgresCluster(binaries: findBinaries() ?? "", root: root, port: 0, runAs: getuid() == 0 ? (owner ?? "postgres") : nil)
            stale.stopAndDelete()
        }
    }

    public struct ClusterError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
