import ShoalNet
import ShoalPeer
import Testing

/// `--tracker a,b`: parsing, and the order a lost session tries them in.
@Suite("Tracker addresses")
struct TrackerAddressesTests {
    @Test func parsesOneOrSeveral() throws {
        #expect(try TrackerAddresses(parsing: "127.0.0.1:6969").endpoints == [Endpoint(host: "127.0.0.1", port: 6969)])
        let several = try TrackerAddresses(parsing: "198.18.0.1:6969, [::1]:7000,tracker.example:6969")
        #expect(several.endpoints == [Endpoint(host: "198.18.0.1", port: 6969), Endpoint(host: "::1", port: 7000),
                                      Endpoint(host: "tracker.example", port: 6969)])
        #expect(several.description == "198.18.0.1:6969,[::1]:7000,tracker.example:6969")
        // The same address twice is tried once.
        #expect(try TrackerAddresses(parsing: "127.0.0.1:1,127.0.0.1:1").endpoints.count == 1)
    }

    @Test func refusesWhatIsNotAList() {
        for text in ["", "127.0.0.1:6969,", ",127.0.0.1:6969", "127.0.0.1", "127.0.0.1:0", "::1:6969,127.0.0.1:1", "a:1,b:99999"] {
            #expect(throws: AddressError.self, "\(text.debugDescription)") { try TrackerAddresses(parsing: text) }
        }
        let many = (1...17).map { "127.0.0.1:\($0)" }.joined(separator: ",")
        #expect(throws: AddressError.self) { try TrackerAddresses(parsing: many) }
    }

    @Test func aLostTrackerIsTriedLast() throws {
        var trackers = try TrackerAddresses(parsing: "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3")
        #expect(trackers.attemptOrder.map(\.port) == [1, 2, 3])
        trackers.moveOn()
        #expect(trackers.endpoint.port == 2)
        #expect(trackers.attemptOrder.map(\.port) == [2, 3, 1])
        trackers.use(Endpoint(host: "127.0.0.1", port: 1))
        #expect(trackers.attemptOrder.map(\.port) == [1, 2, 3])
        // An address not in the list changes nothing.
        trackers.use(Endpoint(host: "127.0.0.1", port: 9))
        #expect(trackers.endpoint.port == 1)
    }
}
