import ArgumentParser
import ShoalNet

extension Endpoint: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// `--tracker HOST:PORT`, shared by every command that talks to a tracker.
struct TrackerOptions: ParsableArguments {
    @Option(name: .customLong("tracker"), help: "The tracker's address, HOST:PORT.")
    var tracker = Endpoint(host: "127.0.0.1", port: 6969)
}
