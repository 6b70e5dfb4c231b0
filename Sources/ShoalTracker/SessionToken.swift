/// A session token: 256 random bits from the system's CSPRNG, shown as 64 hex digits.
public struct SessionToken: Hashable, Sendable, CustomStringConvertible {
    public let value: String

    /// A fresh random token.
    public static func random() -> SessionToken {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for _ in 0..<4 {
            var word = generator.next()
            for _ in 0..<16 {
                out.append(digits[Int(word & 0xF)])
                word >>= 4
            }
        }
        return SessionToken(value: String(decoding: out, as: UTF8.self))
    }

    public init(value: String) { self.value = value }

    /// For logs: never the whole token.
    public var description: String { String(value.prefix(8)) + "…" }
}
