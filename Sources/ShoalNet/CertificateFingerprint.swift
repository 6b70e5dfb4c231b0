import Crypto

/// The SHA-256 of a certificate's DER bytes: what a tracker prints at start,
/// what peers pin (in `known_trackers` or with `--tracker-fingerprint`), and
/// what a holder announces for its peer links.
///
/// Written as 64 lowercase hex digits on the wire and in files; shown
/// colon-grouped (`AB:CD:…`) to people. Parsing takes either form, in any case.
public struct CertificateFingerprint: Hashable, Sendable, CustomStringConvertible {
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    /// The fingerprint of a certificate given as DER bytes.
    public init(derBytes: some Sequence<UInt8>) {
        self.bytes = Array(SHA256.hash(data: Array(derBytes)))
    }

    /// Parses 64 hex digits, with or without colons between the pairs.
    public init(parsing text: String) throws(FingerprintError) {
        let digits = text.filter { $0 != ":" }.lowercased()
        guard digits.count == 64 else { throw .malformed(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { throw .malformed(text) }
            bytes.append(byte)
            index = next
        }
        self.bytes = bytes
    }

    /// 64 lowercase hex digits: the form on the wire and in `known_trackers`.
    public var hex: String { bytes.map { Self.hexByte($0) }.joined() }

    /// Colon-grouped uppercase pairs, as ssh and openssl show fingerprints.
    public var grouped: String { bytes.map { Self.hexByte($0).uppercased() }.joined(separator: ":") }

    public var description: String { grouped }

    private static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }
}

/// A fingerprint that is not 32 bytes of hex.
public enum FingerprintError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)

    public var description: String {
        switch self {
        case let .malformed(text):
            "\(text.debugDescription) is not a SHA-256 fingerprint; give 64 hex digits, with or without colons, as the tracker prints it at start"
        }
    }
}
