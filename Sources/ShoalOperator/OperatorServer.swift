import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import ShoalCore
import ShoalTracker
import ShoalWire

/// `shoal tracker --http`: the operator's view of a running ``Tracker`` over
/// HTTP/1.1 (Hummingbird).
///
/// | path | what |
/// |---|---|
/// | `GET /` | the status page (HTML, inline CSS and script, live by polling the API every second) |
/// | `GET /api/status` | ``OperatorSnapshot`` as JSON; pages with `peersAfter=USER`, `filesAfterName=NAME&filesAfterContent=HEX` |
/// | `GET /metrics` | the tracker's metrics in the Prometheus text format |
/// | `POST /login` | the page's token form: sets the cookie |
///
/// Every path needs the operator token (``OperatorAccess``). Bounded: at most
/// ``maximumConnections`` connections, closed after ``idleTimeout`` idle,
/// small request heads, a 4 KiB login body, and replies of bounded size
/// (one page of the snapshot; the metrics of a closed set of series).
///
/// ```swift
/// let view = try await OperatorServer.start(host: "127.0.0.1", port: 8080, tracker: server.tracker,
///                                           operatorToken: token, metrics: metrics, logger: logger)
/// view.shutdown()      // on SIGTERM (or run it as a Service in a ServiceGroup)
/// await view.run()     // returns once it has stopped
/// ```
public final class OperatorServer: Sendable, Service {
    /// Connections served at once; more wait in the listen backlog.
    public static let maximumConnections = 64
    /// An idle connection is closed after this.
    public static let idleTimeout = TimeAmount.seconds(30)

    /// The address it listens on, and the real port when 0 was asked for.
    public let host: String
    public let port: Int
    private let task: Task<Void, Never>

    private init(host: String, port: Int, task: Task<Void, Never>) {
        self.host = host
        self.port = port
        self.task = task
    }

    /// Binds `host:port` and serves until ``shutdown()``. Throws if it cannot bind.
    public static func start(host: String, port: Int, tracker: Tracker, operatorToken: String, metrics: OperatorMetrics,
                             logger: Logger) async throws -> OperatorServer {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: OperatorAccess(token: operatorToken))
        router.get("/") { _, _ in OperatorResponses.page() }
        router.get("/api/status") { request, _ in try await OperatorResponses.status(request, tracker: tracker) }
        router.get("/metrics") { _, _ in OperatorResponses.metrics(metrics) }
        // Reached only with a good token in the form (the middleware answers the rest).
        router.post("/login") { _, _ in Response.redirect(to: "/", type: .normal) }

        let (events, continuation) = AsyncStream<Result<Int, any Error>>.makeStream()
        var decoder = HTTP1Channel.Configuration.DecoderConfiguration()
        decoder.maxHeaderFieldSize = 8 * 1024
        decoder.maxHeaderListSize = 16 * 1024
        decoder.maxHeaderFieldCount = 64
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: idleTimeout, httpDecoderConfiguration: decoder)),
            configuration: .init(address: .hostname(host, port: port), serverName: nil,
                                 availableConnectionsDelegate: MaximumAvailableConnections(maximumConnections, logger: logger)),
            onServerRunning: { channel in continuation.yield(.success(channel.localAddress?.port ?? port)) },
            logger: logger)
        let task = Task {
            do {
                try await app.run()
                continuation.yield(.failure(CancellationError()))
            } catch {
                continuation.yield(.failure(error))
                if !Task.isCancelled { logger.error("operator view stopped: \(error)") }
            }
            continuation.finish()
        }
        for await event in events {
            switch event {
            case let .success(bound):
                logger.info("operator view on http://\(host.contains(":") ? "[\(host)]" : host):\(bound)/")
                return OperatorServer(host: host, port: bound, task: task)
            case let .failure(error):
                throw OperatorError.cannotListen(host: host, port: port, reason: "\(error)")
            }
        }
        throw OperatorError.cannotListen(host: host, port: port, reason: "the server stopped before it listened")
    }

    /// Stops accepting and closes the connections; ``run()`` then returns.
    public func shutdown() {
        task.cancel()
    }

    /// Waits until the server has stopped: after ``shutdown()``, or, in a
    /// service group, on graceful shutdown or cancellation.
    public func run() async {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await task.value
            } onGracefulShutdown: {
                self.shutdown()
            }
        } onCancel: {
            self.shutdown()
        }
    }
}

/// What can go wrong starting the operator's view.
public enum OperatorError: Error, CustomStringConvertible {
    case cannotListen(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case let .cannotListen(host, port, reason):
            "the operator view cannot listen on \(host):\(port) (\(reason)); pick another --http address or free that port"
        }
    }
}
