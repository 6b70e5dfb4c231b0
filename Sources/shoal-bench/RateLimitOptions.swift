import ArgumentParser
import ShoalCore

/// `--max-download` and `--max-upload` of a benchmark: passed on as they are
/// written to `shoal get` and to each seeder, and parsed to report the rates
/// achieved against them.
struct RateLimitOptions: ParsableArguments {
    @Option(name: .customLong("max-download"), help: "Run shoal get with this --max-download (e.g. 20MB/s) and report the rate achieved against it.")
    var maxDownload: String?
    @Option(name: .customLong("max-upload"), help: "Run each seeder with this --max-upload (e.g. 4MB/s) and report the rates achieved against it.")
    var maxUpload: String?

    func validate() throws {
        for (option, value) in [("--max-download", maxDownload), ("--max-upload", maxUpload)] {
            guard let value else { continue }
            do { _ = try TransferRate(parsing: value) } catch { throw ValidationError("\(option): \(error)") }
        }
    }

    /// The download limit, if one was given.
    var download: TransferRate? { maxDownload.flatMap { try? TransferRate(parsing: $0) } }
    /// Each seeder's upload limit, if one was given.
    var upload: TransferRate? { maxUpload.flatMap { try? TransferRate(parsing: $0) } }

    /// The options for `shoal get`.
    var getArguments: [String] { maxDownload.map { ["--max-download", $0] } ?? [] }
    /// The options for each `shoal seed`.
    var seedArguments: [String] { maxUpload.map { ["--max-upload", $0] } ?? [] }
}
