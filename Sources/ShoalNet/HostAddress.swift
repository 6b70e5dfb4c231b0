import NIOCore

/// A host as Shoal writes it on the command line and on the wire: an IPv4
/// literal (`198.18.0.7`), an IPv6 literal (`::1`, `fe80::1%veth0`, without
/// brackets), or a DNS name (`seed-3.example.org`).
///
/// Parsing normalizes what the kernel may hand back: an IPv4-mapped IPv6
/// address (`::ffff:198.18.0.7`, what a dual-stack socket reports for an IPv4
/// client) becomes the IPv4 address, so the same peer is one address
/// whichever socket saw it.
public struct HostAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case ipv4, ipv6, name
    }

    /// The most characters in a DNS name (RFC 1035).
    public static let maximumNameLength = 253

    /// The host, normalized; IPv6 without brackets.
    public let value: String
    public let kind: Kind
    /// The address's bytes, for literals (4 or 16 of them).
    private let bytes: [UInt8]

    /// Parses `text`; `[::1]` is accepted as well as `::1`.
    public init(_ text: String) throws(AddressError) {
        var text = text
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        guard !text.isEmpty else { throw .emptyHost }
        if text.contains(":") {
            // IPv6, with an optional zone (`%veth0`) that getaddrinfo understands.
            let literal = text.firstIndex(of: "%").map { String(text[..<$0]) } ?? text
            guard let address = try? SocketAddress(ipAddress: literal, port: 0), case let .v6(v6) = address else {
                throw .notAnAddress(text)
            }
            let raw = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if raw[0..<10].allSatisfy({ $0 == 0 }) && raw[10] == 0xFF && raw[11] == 0xFF {
                self.bytes = Array(raw[12..<16])
                self.kind = .ipv4
                self.value = bytes.map(String.init).joined(separator: ".")
            } else {
                self.bytes = raw
                self.kind = .ipv6
                self.value = text.lowercased()
            }
            return
        }
        if text.allSatisfy({ $0.isNumber || $0 == "." }) {
            guard let address = try? SocketAddress(ipAddress: text, port: 0), case let .v4(v4) = address else {
                throw .notAnAddress(text)
            }
            self.bytes = withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
            self.kind = .ipv4
            self.value = bytes.map(String.init).joined(separator: ".")
            return
        }
        guard text.utf8.count <= Self.maximumNameLength else { throw .nameTooLong(length: text.utf8.count, limit: Self.maximumNameLength) }
        let labels: [Substring] = text.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            let valid = !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }
            guard valid else { throw .notAnAddress(text) }
        }
        self.bytes = []
        self.kind = .name
        self.value = text.lowercased()
    }

    /// `0.0.0.0` or `::`: "every interface" when listening, nobody when connecting.
    public var isUnspecified: Bool { !bytes.isEmpty && bytes.allSatisfy { $0 == 0 } }

    /// `127.0.0.0/8`, `::1` or `localhost`: this machine only.
    public var isLoopback: Bool {
        switch kind {
        case .ipv4: return bytes[0] == 127
        case .ipv6: return bytes == [UInt8](repeating: 0, count: 15) + [1]
        case .name: return value == "localhost" || value.hasSuffix(".localhost")
        }
    }

    /// Multicast or IPv4 broadcast: not one host.
    public var isMulticastOrBroadcast: Bool {
        switch kind {
        case .ipv4: return bytes[0] >= 224
        case .ipv6: return bytes[0] == 0xFF
        case .name: return false
        }
    }

    /// How it is written with a port: IPv6 in brackets.
    public var bracketed: String { kind == .ipv6 ? "[\(value)]" : value }

    public var description: String { value }
}

/// A listening address or an advertised one that could not be used.
public enum AddressError: Error, Equatable, Sendable, CustomStringConvertible {
    case emptyHost
    case notAnAddress(String)
    case nameTooLong(length: Int, limit: Int)
    case badPort(String)
    case malformed(String, expected: String)

    public var description: String {
        switch self {
        case .emptyHost:
            return "the host is empty; give an IP address or a host name"
        case let .notAnAddress(text):
            return "\(text.debugDescription) is neither an IPv4 address, an IPv6 address nor a host name"
        case let .nameTooLong(length, limit):
            return "the host name is \(length) characters long; at most \(limit) are allowed"
        case let .badPort(text):
            return "\(text.debugDescription) is not a TCP port (1 ... 65535)"
        case let .malformed(text, expected):
            return "\(text.debugDescription) is not \(expected); write IPv6 addresses in brackets, as in [::1]:7001"
        }
    }
}
