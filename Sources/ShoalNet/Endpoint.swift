/// A TCP address: a host (IP address or name) and a port.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (IPv6 in brackets: `[::1]:6969`); nil if malformed or
    /// the port is out of range.
    public init?(parsing text: String) {
        guard let (host, port) = Self.split(text), let port, let number = Int(port), (1...65_535).contains(number),
              let address = try? HostAddress(host) else { return nil }
        self.init(host: address.value, port: number)
    }

    /// The wildcard a peer listens on by default: every interface, IPv6 and
    /// IPv4 alike (``PeerServer`` falls back to `0.0.0.0` where IPv6 is off).
    public static let allInterfaces = "::"

    /// Parses where to listen: `HOST:PORT`, `[V6]:PORT`, or a bare `PORT`
    /// (every interface). Port 0 picks a free port.
    public static func listening(_ text: String) throws(AddressError) -> Endpoint {
        if let number = Int(text) {
            guard (0...65_535).contains(number) else { throw .badPort(text) }
            return Endpoint(host: allInterfaces, port: number)
        }
        guard let (host, port) = split(text), let port else { throw .malformed(text, expected: "HOST:PORT or PORT") }
        guard let number = Int(port), (0...65_535).contains(number) else { throw .badPort(port) }
        return Endpoint(host: try HostAddress(host).value, port: number)
    }

    /// Parses what a peer tells the tracker to hand out: `HOST`, `HOST:PORT`,
    /// `[V6]`, `[V6]:PORT` or a bare IPv6 literal.
    public static func advertised(_ text: String) throws(AddressError) -> (host: HostAddress, port: Int?) {
        guard let (host, port) = split(text) else { throw .malformed(text, expected: "HOST or HOST:PORT") }
        let address = try HostAddress(host)
        guard let port else { return (address, nil) }
        guard let number = Int(port), (1...65_535).contains(number) else { throw .badPort(port) }
        return (address, number)
    }

    /// `host:port` into its parts; the port is nil when absent. A text with
    /// more than one colon and no brackets is an IPv6 host without a port.
    static func split(_ text: String) -> (host: String, port: String?)? {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (host, nil) }
            guard rest.hasPrefix(":") else { return nil }
            return (host, String(rest.dropFirst()))
        }
        let colons = text.filter { $0 == ":" }.count
        if colons == 0 { return (text, nil) }
        if colons > 1 { return (text, nil) }
        let colon = text.firstIndex(of: ":")!
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
