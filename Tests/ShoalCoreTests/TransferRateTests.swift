import ShoalCore
import Testing

@Suite("Transfer rates")
struct TransferRateTests {
    static let good: [(String, Double)] = [
        ("20MB/s", 20e6), ("100Mbit/s", 12.5e6), ("512KiB/s", 524_288), ("1.5MB/s", 1.5e6),
        ("1000000", 1e6), ("250000/s", 250_000), ("800B/s", 800),
        ("2kB/s", 2000), ("3kbit/s", 375), ("1GB/s", 1e9), ("1GiB/s", 1_073_741_824), ("2Gbit/s", 2.5e8), ("3MiB/s", 3_145_728),
        ("20mb/s", 20e6), ("100MBIT/S", 12.5e6), ("512kib/s", 524_288), ("20MB", 20e6), ("0.5MB/s", 500_000),
    ]

    /// Every unit, any case, with or without `/s`, and a bare number of bytes per second.
    @Test(arguments: good)
    func parses(text: String, bytesPerSecond: Double) throws {
        #expect(try TransferRate(parsing: text).bytesPerSecond == bytesPerSecond)
    }

    static let bad = ["20 MB/s", "", "MB/s", "fast", "20MB/h", "20Mb/sec", "-5MB/s", "1e6", ".5MB/s", "5.MB/s", "1.2.3MB/s", "20 ", "20K/s", "20MB/s/s"]

    /// Anything else is refused with a message that shows what to write.
    @Test(arguments: bad)
    func refuses(text: String) {
        #expect(throws: TransferRate.ParseError.notARate(text)) { try TransferRate(parsing: text) }
    }

    /// The exact messages.
    @Test func messages() {
        #expect("\(TransferRate.ParseError.notARate("20 MB/s"))" == "\"20 MB/s\" is not a rate; write e.g. 20MB/s, 100Mbit/s or 512KiB/s")
        #expect("\(TransferRate.ParseError.notPositive("0MB/s"))"
            == "\"0MB/s\" would stop every transfer; a rate must be above zero (leave the option out for no limit)")
    }

    /// Zero is not a limit.
    @Test func zero() {
        #expect(throws: TransferRate.ParseError.notPositive("0MB/s")) { try TransferRate(parsing: "0MB/s") }
        #expect(throws: TransferRate.ParseError.notPositive("0")) { try TransferRate(parsing: "0") }
    }

    /// Printed in the largest decimal unit under it, up to three decimals.
    @Test func description() throws {
        #expect(try TransferRate(parsing: "20MB/s").description == "20 MB/s")
        #expect(try TransferRate(parsing: "100Mbit/s").description == "12.5 MB/s")
        #expect(try TransferRate(parsing: "512KiB/s").description == "524.288 kB/s")
        #expect(try TransferRate(parsing: "1.5GB/s").description == "1.5 GB/s")
        #expect(try TransferRate(parsing: "999").description == "999 B/s")
    }
}
