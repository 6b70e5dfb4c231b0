import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import ShoalNet
import ShoalOperator
import ShoalPeer
import ShoalTracker
import ShoalWire

/// `shoal tracker`: run the tracker, or ask a running one for its status.
struct TrackerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracker",
        abstract: "Run a tracker, or show a running tracker's status.",
        subcommands: [TrackerServe.self, TrackerStatusCommand.self],
        defaultSubcommand: TrackerServe.self
    )
}

/// `shoal tracker [serve]`: the tracker server.
struct TrackerServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve as the tracker until SIGINT or SIGTERM.",
        discussion: """
            The first line on stdout is `listening on HOST:PORT`, the second `certificate fingerprint SHA-256 AB:CD:…` \
            (peers pin it); events are logged on stderr, one line each. At start the tracker writes a new operator \
            token for `shoal tracker status` to DB-operator-token beside its database (mode 0600). \
            With --http it also serves the operator's web page, a JSON API and Prometheus /metrics, all behind that \
            token; its third line is then `operator view on http://HOST:PORT/`. On SIGTERM or \
            SIGINT it accepts no new connections, answers the requests it is handling (at most --drain-seconds), \
            closes its database and exits 0.
            """
    )

    @Option(help: "The address to listen on.")
    var host = TrackerConfiguration.defaultHost

    @Option(help: "The port to listen on; 0 picks a free one.")
    var port = TrackerConfiguration.defaultPort

    @Option(help: ArgumentHelp("""
        Where accounts and counters are kept: a SQLite file (the default), or a PostgreSQL database, which also keeps the \
        live registry: postgres://USER[:PASSWORD]@HOST:PORT/DB, postgres://USER@/DB?host=/SOCKET/DIR, or `postgres` \
        alone to use PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE.
        """, valueName: "path|url"))
    var db = TrackerConfiguration.defaultDatabasePath

    @Option(help: ArgumentHelp("Where to write the operator token that `status` needs (mode 0600).", valueName: "path"))
    var tokenFile: String?

    @Option(help: "Probe a peer that has been quiet this many seconds.")
    var probeInterval: Double = 30

    @Option(help: "Drop a peer whose probe goes unanswered this many seconds.")
    var probeTimeout: Double = 10

    @Option(help: "Serve at most this many connections at once.")
    var maxConnections = 1024

    @Option(help: "Accounts one address may register at once, before the rate below applies.")
    var registrationBurst = 20

    @Option(help: "Then one more account per address every this many seconds.")
    var registrationInterval: Double = 60

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    @OptionGroup var shutdown: ShutdownOptions

    @Option(help: .hidden)
    var passwordRounds = 210_000

    /// With --db postgres://…: how long this instance's sessions outlive it on the other instances (tests use a short one).
    @Option(help: .hidden)
    var leaseSeconds: Double = 15

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("The tracker's TLS certificate (PEM); default: DB-cert.pem beside the database, made self-signed on first start.", valueName: "path"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("The private key of --tls-cert (PEM); default: DB-key.pem beside the database (mode 0600).", valueName: "path"))
    var tlsKey: String?

    @Flag(help: "Serve in clear, without TLS: passwords and session tokens cross the network readable. Peers must say --insecure too.")
    var insecure = false

    @Option(name: .customLong("http"),
            help: ArgumentHelp("Also serve the operator's status page, JSON API and /metrics over HTTP here: HOST:PORT, or PORT alone for 127.0.0.1 only. Every path needs the operator token.",
                               valueName: "address"))
    var http: String?

    @Flag(name: .customLong("require-encryption"), help: "Refuse logins of serving peers that do not encrypt their links (peers without --encrypt).")
    var requireEncryption = false

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 ... 65535; got \(port)") }
        guard probeInterval > 0, probeTimeout > 0 else { throw ValidationError("--probe-interval and --probe-timeout must be positive") }
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be positive") }
        if PostgresAddress.isPostgres(db) {
            do { _ = try PostgresAddress(parsing: db) } catch { throw ValidationError("--db: \(error)") }
        }
        guard passwordRounds >= 1 else { throw ValidationError("--password-rounds must be positive") }
        guard leaseSeconds >= 0.3 else { throw ValidationError("--lease-seconds must be at least 0.3") }
        guard registrationBurst >= 1, registrationInterval > 0 else {
            throw ValidationError("--registration-burst must be at least 1 and --registration-interval positive")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("give --tls-cert and --tls-key together, or neither (then a self-signed pair is kept beside the database)") }
        if insecure && tlsCert != nil { throw ValidationError("--insecure serves without TLS; leave out --tls-cert and --tls-key, or --insecure") }
        if let http { _ = try Self.httpAddress(http) }
    }

    /// Where `--http` listens: `HOST:PORT`, `[V6]:PORT`, or a bare `PORT` on 127.0.0.1 only
    /// (the page carries the operator's token: exposing it takes an explicit host).
    static func httpAddress(_ text: String) throws -> Endpoint {
        if let number = Int(text) {
            guard (0...65_535).contains(number) else { throw ValidationError("--http: \(text) is not a port (0 ... 65535)") }
            return Endpoint(host: "127.0.0.1", port: number)
        }
        do {
            return try Endpoint.listening(text)
        } catch {
            throw ValidationError("--http: \(error); give HOST:PORT, [V6]:PORT or a port (then 127.0.0.1 only)")
        }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "shoal.tracker")
        var configuration = TrackerConfiguration(host: host, port: port, databasePath: db)
        if PostgresAddress.isPostgres(db) {
            configuration.postgres = try PostgresAddress(parsing: db)
            // The operator token and the certificate go where they go for the default database.
            configuration.databasePath = TrackerConfiguration.defaultDatabasePath
        }
        configuration.probeInterval = probeInterval
        configuration.probeTimeout = probeTimeout
        configuration.maximumConnections = maxConnections
        configuration.registrationThrottle = RegistrationThrottle(burst: registrationBurst, interval: registrationInterval)
        configuration.passwordRounds = passwordRounds
        configuration.leaseSeconds = leaseSeconds
        configuration.operatorTokenPath = tokenFile
        configuration.requireEncryption = requireEncryption
        if insecure {
            configuration.transport = .plain
        } else if let tlsCert, let tlsKey {
            // Given files must exist: nothing is made in their place.
            do {
                configuration.transport = .identity(try TLSIdentity.load(certificatePath: tlsCert, keyPath: tlsKey))
            } catch {
                throw CLIError("\(error)")
            }
        } else {
            let paths = configuration.defaultCertificatePaths
            configuration.transport = .tls(certificatePath: paths.certificate, keyPath: paths.key)
        }
        let metrics = http == nil ? nil : OperatorMetrics()
        configuration.metricsFactory = metrics?.factory

        let server: TrackerServer
        do {
            server = try await TrackerServer.start(configuration: configuration, logger: logger)
        } catch {
            throw CLIError("\(error)")
        }
        // Printed once the service group traps SIGTERM (see ShutdownOptions.group).
        var ready = ["listening on \(Endpoint(host: server.host, port: server.port))"]
        if let fingerprint = server.fingerprint {
            ready.append("certificate fingerprint SHA-256 \(fingerprint.grouped)")
        } else {
            ready.append("serving in clear (--insecure): passwords and tokens cross the network readable")
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        if let http, let metrics {
            let address = try Self.httpAddress(http)
            let view: OperatorServer
            do {
                let token = try OperatorToken.read(from: configuration.operatorTokenFile)
                view = try await OperatorServer.start(host: address.host, port: address.port, tracker: server.tracker, operatorToken: token,
                                                      metrics: metrics, logger: Logger(label: "shoal.operator"))
            } catch {
                server.shutdown()
                await server.run()
                throw CLIError("\(error)")
            }
            ready.append("operator view on http://\(Endpoint(host: address.host, port: view.port))/")
            // Last in the group, so it stops first; the tracker serves on if the view fails.
            services.append(.init(service: view, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore))
        }
        do {
            try await shutdown.group(services, ready: ready, logger: logger).run()
        } catch {
            throw CLIError("stopping failed: \(error)")
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `shoal tracker status`: what a running tracker knows.
struct TrackerStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running tracker's registered and connected peers, files and counters.",
        discussion: """
            Only for the tracker's operator: it sends the operator token the tracker wrote at start, read from \
            --token-file, or else from DB-operator-token beside the database named by --db.
            """
    )

    @OptionGroup var options: TrackerOptions

    @Option(help: ArgumentHelp("The tracker's database, whose operator token file (DB-operator-token) to read.", valueName: "path"))
    var db = TrackerConfiguration.defaultDatabasePath

    @Option(help: ArgumentHelp("The operator token file the tracker wrote (default: DB-operator-token).", valueName: "path"))
    var tokenFile: String?

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    func run() async throws {
        let path = tokenFile ?? TrackerConfiguration.operatorTokenPath(forDatabase: db)
        let token: String
        do {
            token = try OperatorToken.read(from: path)
        } catch {
            throw CLIError("cannot read the operator token file \(path) (\(error.localizedDescription)); status is for the tracker's operator: run it as the tracker's user with --db pointing at its database, or pass --token-file")
        }
        var status: TrackerStatus
        do {
            let connection = try await options.trust.connect(to: options.tracker.endpoint, role: "tool")
            defer { connection.close() }
            func page(_ request: StatusRequest) async throws -> TrackerStatus {
                guard case let .trackerStatus(reply) = try await connection.request(.status(request), timeout: .seconds(10)) else {
                    throw CLIError("the tracker answered status with something else")
                }
                return reply
            }
            // The first page of each, then the rest page by page; cursors must move on.
            status = try await page(StatusRequest(token: token))
            var nextPeers = status.nextPeers
            while let after = nextPeers {
                let more = try await page(StatusRequest(token: token, peersAfter: after))
                status.peers += more.peers
                nextPeers = more.nextPeers.flatMap { $0 > after ? $0 : nil }
            }
            var nextFiles = status.nextFiles
            while let after = nextFiles {
                let more = try await page(StatusRequest(token: token, filesAfter: after))
                status.files += more.files
                nextFiles = more.nextFiles.flatMap { $0 != after && !more.files.isEmpty ? $0 : nil }
            }
            status.nextPeers = nil
            status.nextFiles = nil
        } catch NetError.wire(.remote("not_allowed", _)) {
            throw CLIError("the tracker refused the operator token in \(path): it is not the one this tracker wrote at its last start; point --token-file (or --db) at the running tracker's file")
        } catch let error as NetError {
            throw CLIError("\(error)")
        } catch let error as KnownTrackersError {
            throw CLIError("\(error)")
        }
        if json {
            try Output.json(status)
            return
        }
        Output.line("tracker \(options.tracker): \(status.registered) registered, \(status.connected) connected")
        Output.line("")
        Output.line(status.files.isEmpty ? "No files are shared." : "Files:")
        for file in status.files {
            let partial = file.partialHolders.isEmpty ? "" : "; partial: \(file.partialHolders.joined(separator: ", "))"
            let more = file.moreHolders.map { " and \($0) more" } ?? ""
            Output.line("  \(file.name)  \(file.contentID.short)  \(Output.bytes(file.size))  holders: \(file.holders.isEmpty ? "-" : file.holders.joined(separator: ", "))\(partial)\(more)")
        }
        Output.line("")
        Output.line(status.peers.isEmpty ? "No accounts." : "Peers:")
        let width = status.peers.map(\.user.count).max() ?? 0
        for peer in status.peers {
            let name = peer.user.padding(toLength: width, withPad: " ", startingAt: 0)
            let place = peer.connected ? "connected  \(Endpoint(host: peer.host ?? "?", port: peer.port ?? 0))" : "offline"
            Output.line("  \(name)  \(place)  downloads \(peer.countDownloads)  failures \(peer.countFailures)  served \(Output.bytes(peer.bytesServed))")
        }
    }
}
