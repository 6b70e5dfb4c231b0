extension Duration {
    /// The duration in (fractional) seconds, for rates and timeouts.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
