/// How a host's link to the lab's switch behaves, the same in both directions.
///
/// A path between two hosts crosses both their links, so its one-way delay is
/// the sum of both links' delays and each link's loss applies on it.
public struct LinkShape: Sendable, Hashable, CustomStringConvertible {
    /// Rate in Mbit/s (10^6 bits), enforced by a tbf qdisc on each end of the
    /// link's veth; nil for no limit.
    public var rateMbit: Double?
    /// One-way delay in milliseconds, added to every packet entering or
    /// leaving the host (so a ping across this link alone takes 2 × this).
    public var delayMs: Double
    /// Probability (0 ... 1) that a packet is dropped, in each direction.
    public var loss: Double

    public init(rateMbit: Double? = nil, delayMs: Double = 0, loss: Double = 0) {
        self.rateMbit = rateMbit
        self.delayMs = delayMs
        self.loss = loss
    }

    public var description: String {
        var parts: [String] = []
        parts.append(rateMbit.map { "\(Self.number($0)) Mbit/s" } ?? "no rate limit")
        parts.append("\(Self.number(delayMs)) ms")
        parts.append("\(Self.number(loss * 100)) % loss")
        return parts.joined(separator: ", ")
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
    }
}
