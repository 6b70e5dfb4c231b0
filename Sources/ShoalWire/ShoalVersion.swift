/// This build's version, shown by `shoal --version` and sent in `hello`.
public enum ShoalVersion {
    public static let current = "0.1.0"
    /// The `software` string of handshakes: `"shoal 0.1.0"`.
    public static var software: String { "shoal \(current)" }
}
