/// An account name on the tracker: 1 to 32 characters from letters, digits,
/// `_`, `-` and `.`, not starting with `.` or `-`. Names are unique and compared
/// exactly (case matters).
public struct UserName: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The most characters in a user name.
    public static let maximumLength = 32

    public let value: String

    /// Validates `value`.
    public init(_ value: String) throws(NameError) {
        let kind = "user name"
        guard !value.isEmpty else { throw .empty(kind: kind) }
        let length = value.utf8.count
        guard length <= Self.maximumLength else { throw .tooLong(kind: kind, length: length, limit: Self.maximumLength) }
        for scalar in value.unicodeScalars {
            let ok = scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_" || scalar == "-" || scalar == ".")
            guard ok else {
                let shown = scalar.properties.generalCategory == .control ? FileName.describe(scalar) : "'\(scalar)'"
                throw .forbiddenCharacter(kind: kind, name: value, character: shown)
            }
        }
        guard !value.hasPrefix("."), !value.hasPrefix("-") else {
            throw .forbiddenCharacter(kind: kind, name: value, character: "a leading '\(value.first!)'")
        }
        self.value = value
    }

    public var description: String { value }
    public static func < (lhs: UserName, rhs: UserName) -> Bool { lhs.value < rhs.value }
}
