/// A transfer rate in bytes per second, as the user writes it: `20MB/s`,
/// `100Mbit/s`, `512KiB/s`, `1.5MB/s`, or a bare number of bytes per second.
///
/// Units are case-insensitive. Decimal prefixes are powers of ten (kB, MB,
/// GB = 10^3, 10^6, 10^9 bytes; kbit, Mbit, Gbit = 10^3, 10^6, 10^9 bits),
/// binary ones powers of two (KiB, MiB, GiB). The `/s` may be left out:
/// `20MB` is 20 MB/s. No space between the number and the unit, so that a
/// rate is one shell word.
public struct TransferRate: Sendable, Hashable, CustomStringConvertible {
    /// Bytes per second; always finite and above zero.
    public let bytesPerSecond: Double

    /// Why a string is not a rate.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        /// Not a number followed by a known unit.
        case notARate(String)
        /// Zero: a limit that would stop every transfer.
        case notPositive(String)

        public var description: String {
            switch self {
            case let .notARate(text): "\"\(text)\" is not a rate; write e.g. 20MB/s, 100Mbit/s or 512KiB/s"
            case let .notPositive(text): "\"\(text)\" would stop every transfer; a rate must be above zero (leave the option out for no limit)"
            }
        }
    }

    /// The units, lowercased, with how many bytes one of them is.
    static let units: [String: Double] = [
        "": 1, "b": 1,
        "kb": 1e3, "mb": 1e6, "gb": 1e9,
        "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824,
        "bit": 1.0 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
    ]

    public init(bytesPerSecond: Double) {
        precondition(bytesPerSecond.isFinite && bytesPerSecond > 0, "a rate is finite and above zero")
        self.bytesPerSecond = bytesPerSecond
    }

    /// Parses `20MB/s`, `100Mbit/s`, `512KiB/s`, `1.5MB/s`, `1000000` (bytes per second).
    public init(parsing text: String) throws(ParseError) {
        var rest = Substring(text)
        let digits = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        rest = rest.dropFirst(digits.count)
        var unit = rest.lowercased()
        if unit.hasSuffix("/s") { unit.removeLast(2) }
        guard digits.first != ".", digits.last != ".", let number = Double(digits), number.isFinite,
              let scale = Self.units[unit] else { throw .notARate(text) }
        let bytes = number * scale
        guard bytes > 0 else { throw .notPositive(text) }
        guard bytes.isFinite else { throw .notARate(text) }
        self.bytesPerSecond = bytes
    }

    /// The rate in the largest decimal unit under it: `20 MB/s`, `512 kB/s`, `1.5 GB/s`.
    public var description: String {
        let (value, unit): (Double, String) = switch bytesPerSecond {
        case 1e9...: (bytesPerSecond / 1e9, "GB/s")
        case 1e6...: (bytesPerSecond / 1e6, "MB/s")
        case 1e3...: (bytesPerSecond / 1e3, "kB/s")
        default: (bytesPerSecond, "B/s")
        }
        // Up to three decimals, without trailing zeros.
        let thousandths = (value * 1000).rounded()
        let whole = Int(thousandths / 1000)
        var fraction = String(Int(thousandths) % 1000)
        fraction = String(repeating: "0", count: 3 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return fraction.isEmpty ? "\(whole) \(unit)" : "\(whole).\(fraction) \(unit)"
    }
}
