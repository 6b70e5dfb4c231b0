import ShoalNet
import Testing

/// Hosts, listening addresses and advertised addresses as users write them.
@Suite("Addresses")
struct AddressTests {
    /// IPv4, IPv6 (bare or bracketed) and names parse; IPv4-mapped IPv6 becomes IPv4.
    @Test func hosts() throws {
        #expect(try HostAddress("198.18.0.7").kind == .ipv4)
        #expect(try HostAddress("::1").kind == .ipv6)
        #expect(try HostAddress("[::1]").value == "::1")
        #expect(try HostAddress("FE80::1%veth0").value == "fe80::1%veth0")
        #expect(try HostAddress("::ffff:198.18.0.7") == HostAddress("198.18.0.7"))
        #expect(try HostAddress("Seed-3.example.org").value == "seed-3.example.org")
        #expect(try HostAddress("127.0.0.2").isLoopback && HostAddress("::1").isLoopback && HostAddress("localhost").isLoopback)
        #expect(try HostAddress("0.0.0.0").isUnspecified && HostAddress("::").isUnspecified)
        #expect(try HostAddress("224.0.0.1").isMulticastOrBroadcast && HostAddress("255.255.255.255").isMulticastOrBroadcast)
        #expect(try !HostAddress("198.18.0.7").isLoopback)
    }

    /// Malformed hosts are refused with a message naming them.
    @Test func badHosts() {
        for text in ["", "300.1.1.1", "1.2.3", "a..b", "-a.b", "a_b.c", "1::2::3", "ex ample", String(repeating: "a", count: 64) + ".org"] {
            #expect(throws: AddressError.self, "\(text) parsed") { try HostAddress(text) }
        }
        #expect(throws: AddressError.nameTooLong(length: 260, limit: 253)) { try HostAddress(String(repeating: "abcd.", count: 52)) }
    }

    /// --listen: HOST:PORT, [IPv6]:PORT, or PORT on every interface; port 0 allowed.
    @Test func listening() throws {
        #expect(try Endpoint.listening("7001") == Endpoint(host: "::", port: 7001))
        #expect(try Endpoint.listening("0") == Endpoint(host: "::", port: 0))
        #expect(try Endpoint.listening("198.18.0.2:0") == Endpoint(host: "198.18.0.2", port: 0))
        #expect(try Endpoint.listening("[::1]:7001") == Endpoint(host: "::1", port: 7001))
        #expect(try Endpoint.listening("0.0.0.0:7001") == Endpoint(host: "0.0.0.0", port: 7001))
        #expect(throws: AddressError.badPort("70000")) { try Endpoint.listening("70000") }
        #expect(throws: AddressError.badPort("x")) { try Endpoint.listening("host:x") }
        #expect(throws: AddressError.self) { try Endpoint.listening("::1") }
        #expect(Endpoint(host: "::1", port: 6969).description == "[::1]:6969")
    }

    /// --advertise: HOST, HOST:PORT, [IPv6], [IPv6]:PORT or a bare IPv6 address.
    @Test func advertised() throws {
        let name = try Endpoint.advertised("seed.example.org")
        #expect(name.host.value == "seed.example.org" && name.port == nil)
        let withPort = try Endpoint.advertised("198.18.0.9:7001")
        #expect(withPort.host.value == "198.18.0.9" && withPort.port == 7001)
        let v6 = try Endpoint.advertised("[2001:db8::5]:7001")
        #expect(v6.host.value == "2001:db8::5" && v6.port == 7001)
        #expect(try Endpoint.advertised("2001:db8::5").port == nil)
        #expect(try Endpoint.advertised("[2001:db8::5]").host.kind == .ipv6)
        #expect(throws: AddressError.badPort("0")) { try Endpoint.advertised("198.18.0.9:0") }
        #expect(throws: AddressError.self) { try Endpoint.advertised("[::1") }
    }

    /// --tracker: HOST:PORT with IPv6 in brackets.
    @Test func trackerAddress() {
        #expect(Endpoint(parsing: "[::1]:6969") == Endpoint(host: "::1", port: 6969))
        #expect(Endpoint(parsing: "tracker.example.org:6969") == Endpoint(host: "tracker.example.org", port: 6969))
        #expect(Endpoint(parsing: "::1:6969") == nil)
        #expect(Endpoint(parsing: "127.0.0.1:0") == nil)
        #expect(Endpoint(parsing: "127.0.0.1") == nil)
    }
}
