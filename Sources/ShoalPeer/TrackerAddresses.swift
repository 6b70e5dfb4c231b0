import Foundation
import ShoalNet

/// The trackers a peer may use, in the order given (`--tracker a:6969,b:6969`):
/// several instances of one tracker sharing a database. A session uses one
/// at a time; when it is lost, the next ones are tried in turn, the one
/// that failed last.
public struct TrackerAddresses: Sendable, Equatable, CustomStringConvertible {
    /// At most this many addresses: a typo should not make a peer dial hundreds.
    public static let maximumCount = 16

    public private(set) var endpoints: [Endpoint]
    /// The one in use (or tried first next time).
    public private(set) var current = 0

    public init(_ endpoints: [Endpoint]) {
        precondition(!endpoints.isEmpty, "at least one tracker")
        var unique: [Endpoint] = []
        for endpoint in endpoints where !unique.contains(endpoint) { unique.append(endpoint) }
        self.endpoints = unique
    }

    public init(_ endpoint: Endpoint) { self.init([endpoint]) }

    /// Parses `HOST:PORT[,HOST:PORT…]` (IPv6 in brackets).
    public init(parsing text: String) throws(AddressError) {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count <= Self.maximumCount else {
            throw .malformed(text, expected: "at most \(Self.maximumCount) trackers, HOST:PORT,HOST:PORT,…")
        }
        var endpoints: [Endpoint] = []
        for part in parts {
            guard !part.isEmpty else { throw .malformed(text, expected: "HOST:PORT,HOST:PORT,… with no empty entry") }
            guard let endpoint = Endpoint(parsing: part) else { throw .malformed(part, expected: "HOST:PORT (IPv6 as [ADDRESS]:PORT)") }
            endpoints.append(endpoint)
        }
        self.init(endpoints)
    }

    /// The tracker in use.
    public var endpoint: Endpoint { endpoints[current] }

    /// Every tracker, starting with the one in use, then the ones after it
    /// (wrapping around): the order a (re)connection tries them in.
    public var attemptOrder: [Endpoint] {
        endpoints.indices.map { endpoints[(current + $0) % endpoints.count] }
    }

    /// The session now uses `endpoint` (one of the list).
    public mutating func use(_ endpoint: Endpoint) {
        if let index = endpoints.firstIndex(of: endpoint) { current = index }
    }

    /// The tracker in use was lost: the next one is tried first, the lost one last.
    public mutating func moveOn() {
        current = (current + 1) % endpoints.count
    }

    public var description: String { endpoints.map(\.description).joined(separator: ",") }
}
