import Foundation
import Hummingbird
import ShoalCore
import ShoalTracker
import ShoalWire

/// The answers of the operator's view, past ``OperatorAccess``.
enum OperatorResponses {
    /// Headers on every answer: nothing is cached, sniffed or framed.
    static var commonHeaders: HTTPFields {
        [.cacheControl: "no-store", .xContentTypeOptions: "nosniff", .init("Referrer-Policy")!: "no-referrer"]
    }

    /// The longest cursor value taken from a query (a user or file name is far shorter).
    static let cursorLimit = 1024

    /// The status page.
    static func page() -> Response {
        var headers = commonHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.contentSecurityPolicy] = OperatorPage.contentSecurityPolicy
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: OperatorPage.html)))
    }

    /// One page of the snapshot as JSON.
    static func status(_ request: Request, tracker: Tracker) async throws -> Response {
        let query = request.uri.queryParameters
        var pages = OperatorSnapshot.Request()
        if let after = query.get("peersAfter") {
            guard after.utf8.count <= cursorLimit else { throw HTTPError(.badRequest, message: "peersAfter is over \(cursorLimit) bytes") }
            pages.peersAfter = after
        }
        switch (query.get("filesAfterName"), query.get("filesAfterContent")) {
        case (nil, nil):
            break
        case let (name?, hex?):
            guard name.utf8.count <= cursorLimit, let id = ContentID(hex: hex) else {
                throw HTTPError(.badRequest, message: "filesAfterContent must be a content id (64 hex digits) and filesAfterName a name of at most \(cursorLimit) bytes")
            }
            pages.filesAfter = ListCursor(name: name, contentID: id)
        default:
            throw HTTPError(.badRequest, message: "give filesAfterName and filesAfterContent together (the nextFiles of the previous page)")
        }
        let snapshot: OperatorSnapshot
        do {
            snapshot = try await tracker.operatorSnapshot(pages)
        } catch {
            throw HTTPError(.serviceUnavailable, message: "the tracker could not read its accounts: \(error)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var headers = commonHeaders
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(snapshot))))
    }

    /// The metrics in the Prometheus text format.
    static func metrics(_ metrics: OperatorMetrics) -> Response {
        var headers = commonHeaders
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
    }
}
