@testable import ShoalLab
import Testing

/// What a host received, read from its `raw PREROUTING` rules: pure
/// parsing of the output `iptables -S -v` gives (no namespace needed).
@Suite("Lab receive counters")
struct ReceiveCountersTests {
    func host(_ name: String, _ n: Int) -> NetworkLab.Host {
        NetworkLab.Host(name: name, namespace: "ns-\(name)", address: "198.18.0.\(n)", interface: "eth0", switchPort: "p\(n)", index: n - 1)
    }

    /// Counting rules give each sender's traffic, DROP rules the lab's loss,
    /// each packet with its 14-byte Ethernet header added; the policy line,
    /// delay rules and rules about unknown addresses count for nothing.
    @Test func countingAndDropRules() {
        let (a, b, c) = (host("a", 1), host("b", 2), host("c", 3))
        let rules = """
        -P PREROUTING ACCEPT -c 7 700
        -A PREROUTING -s 198.18.0.2/32 -i eth0 -c 100 150000
        -A PREROUTING -s 198.18.0.3/32 -i eth0 -c 10 600
        -A PREROUTING -s 198.18.0.9/32 -i eth0 -c 5 500
        -A PREROUTING -s 198.18.0.3/32 -i eth0 -m statistic --mode random --probability 0.00999999978 -c 2 3000 -j DROP
        -A PREROUTING -s 198.18.0.2/32 -i eth0 -c 40 60000 -j NFQUEUE --queue-num 2
        """
        let counters = NetworkLab.receiveCounters(rules: rules, of: a, senders: [a, b, c])
        let fromB = NetworkLab.Traffic(packets: 100, bytes: 151_400)
        let fromC = NetworkLab.Traffic(packets: 10, bytes: 740)
        let expected: [String: NetworkLab.Traffic] = ["b": fromB, "c": fromC]
        #expect(counters.bySender == expected)
        #expect(counters.labDropped == NetworkLab.Traffic(packets: 2, bytes: 3028))
        #expect(counters.delayerDropped == 0)
    }
}
