import Crypto
import CryptoExtras
import Foundation

/// Salted, slow password hashes: PBKDF2-HMAC-SHA256.
///
/// The stored form is `pbkdf2-sha256$ROUNDS$SALT$HASH` (salt and hash in
/// base64), so the round count can grow later without breaking old accounts.
/// 210 000 rounds (OWASP's figure, and swift-crypto's floor) take about 0.1 s
/// on this project's machines: callers run it off the event loop.
public struct PasswordHasher: Sendable {
    /// The production round count.
    public static let defaultRounds = 210_000
    public let rounds: Int

    /// - Parameter rounds: tests may use fewer to stay fast; production never does.
    public init(rounds: Int = PasswordHasher.defaultRounds) {
        precondition(rounds >= 1)
        self.rounds = rounds
    }

    /// A new stored hash of `password` with a fresh 16-byte salt.
    public func hash(_ password: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let derived = Self.derive(password, salt: salt, rounds: rounds)
        return "pbkdf2-sha256$\(rounds)$\(Data(salt).base64EncodedString())$\(Data(derived).base64EncodedString())"
    }

    /// Whether `password` matches `stored` (compared in constant time).
    public func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let rounds = Int(parts[1]), rounds > 0,
              let salt = Data(base64Encoded: String(parts[2])), let expected = Data(base64Encoded: String(parts[3])) else {
            return false
        }
        let derived = Self.derive(password, salt: [UInt8](salt), rounds: rounds)
        guard derived.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(derived, expected) { difference |= a ^ b }
        return difference == 0
    }

    private static func derive(_ password: String, salt: [UInt8], rounds: Int) -> [UInt8] {
        // Only fails for an unsupported hash function, which sha256 is not.
        let key = try! KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 32, unsafeUncheckedRounds: rounds)
        return key.withUnsafeBytes { Array($0) }
    }
}
