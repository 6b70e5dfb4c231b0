/// A name a file is shared under: the name of a regular file directly inside
/// a peer's folder, safe to use as a path component on any peer.
///
/// Allowed: 1 to 255 bytes of UTF-8 with no `/`, `\`, NUL or other control
/// character, no invisible format character (bidi overrides, zero-width
/// spaces), not `.` or `..`, and not starting with `.` (hidden files, which
/// include Shoal's own partial downloads, are never shared).
public struct FileName: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The most UTF-8 bytes in a file name.
    public static let maximumLength = 255

    public let value: String

    /// Validates `value`.
    public init(_ value: String) throws(NameError) {
        let kind = "file name"
        guard !value.isEmpty else { throw .empty(kind: kind) }
        let length = value.utf8.count
        guard length <= Self.maximumLength else { throw .tooLong(kind: kind, length: length, limit: Self.maximumLength) }
        // Printable ASCII other than the slashes is allowed: most names are
        // that, checked without a Unicode property lookup per character.
        let plain = value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "\\") }
        if !plain, let bad = value.unicodeScalars.first(where: Self.isForbidden) {
            throw .forbiddenCharacter(kind: kind, name: value, character: Self.describe(bad))
        }
        guard value != ".", value != ".." else { throw .reserved(kind: kind, name: value) }
        guard !value.hasPrefix(".") else { throw .forbiddenCharacter(kind: kind, name: value, character: "a leading '.'") }
        self.value = value
    }

    public var description: String { value }

    // Names are compared by their bytes: on Linux "é" precomposed and "e" +
    // combining accent are two different files, though Swift calls the strings equal.
    public static func == (lhs: FileName, rhs: FileName) -> Bool { lhs.value.utf8.elementsEqual(rhs.value.utf8) }
    public func hash(into hasher: inout Hasher) {
        var value = value
        value.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
    public static func < (lhs: FileName, rhs: FileName) -> Bool { lhs.value.utf8.lexicographicallyPrecedes(rhs.value.utf8) }

    /// Path separators, control characters, and invisible format characters
    /// (bidi overrides, zero-width joiners) that make a name look like another.
    static func isForbidden(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: return true
        default: return scalar == "/" || scalar == "\\"
        }
    }

    static func describe(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\0": return "NUL"
        case "/": return "'/'"
        case "\\": return "'\\'"
        default:
            let kind = scalar.properties.generalCategory == .control ? "control" : "invisible"
            return "the \(kind) character U+\(String(scalar.value, radix: 16, uppercase: true))"
        }
    }
}
