import Foundation
import Logging
import ShoalCore
import ShoalNet
import ShoalOperator
import ShoalTestSupport
import ShoalTracker
import ShoalWire

/// A real tracker on loopback with its operator view on a free loopback
/// port, its metrics in a Prometheus registry of its own.
struct OperatorFixture {
    let tracker: TestTracker
    let view: OperatorServer
    let metrics: OperatorMetrics

    var port: Int { view.port }
    var token: String { tracker.operatorToken }
    var bearer: [String: String] { ["Authorization": "Bearer \(token)"] }

    static func start(_ configure: (inout TrackerConfiguration) -> Void = { _ in }) async throws -> OperatorFixture {
        let metrics = OperatorMetrics()
        let tracker = try await TestTracker.start {
            $0.metricsFactory = metrics.factory
            configure(&$0)
        }
        let view = try await OperatorServer.start(host: "127.0.0.1", port: 0, tracker: tracker.server.tracker,
                                                  operatorToken: tracker.operatorToken, metrics: metrics,
                                                  logger: tracker.log.logger(label: "shoal.operator"))
        return OperatorFixture(tracker: tracker, view: view, metrics: metrics)
    }

    /// Runs `body` against a fresh fixture and stops it afterwards, also when `body` throws.
    static func with(_ configure: (inout TrackerConfiguration) -> Void = { _ in },
                     _ body: (OperatorFixture) async throws -> Void) async throws {
        let fixture = try await start(configure)
        do {
            try await body(fixture)
        } catch {
            await fixture.stop()
            throw error
        }
        await fixture.stop()
    }

    func stop() async {
        view.shutdown()
        await view.run()
        await tracker.stopAndRemove()
    }

    /// `GET path` with the operator token as a bearer.
    func get(_ path: String) async throws -> HTTPExchange {
        try await HTTPExchange.send("GET", path, port: port, headers: bearer)
    }

    /// The first page of the snapshot, decoded.
    func snapshot(_ query: String = "") async throws -> OperatorSnapshot {
        let reply = try await get("/api/status" + query)
        guard reply.status == 200 else { throw HTTPExchangeError("GET /api/status\(query): \(reply.status) \(reply.text)") }
        return try JSONDecoder().decode(OperatorSnapshot.self, from: Data(reply.body))
    }

    /// A peer that registers, logs in (serving on `port`) and announces `files`
    /// complete; returns its connection, kept open, and its session token.
    func peer(_ user: String, port: Int = 9000, files: [(String, Manifest)]) async throws -> (FramedConnection, String) {
        let connection = try await tracker.connect()
        let token = try await connection.signUp(user, port: port)
        if !files.isEmpty { try await connection.announce(token, files) }
        return (connection, token)
    }
}

/// A Prometheus sample's value: the line `name{labels} value` (or `name value`).
func sample(_ exposition: String, _ series: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}
