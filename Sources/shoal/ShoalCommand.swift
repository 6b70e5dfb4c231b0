import ArgumentParser
import Foundation
import ShoalWire

/// The entry point: with `SHOAL_EXIT_WITH_PARENT=1` in the environment the
/// process ends when whatever started it ends (test runs, supervisors), then
/// the command line is parsed and run.
@main
enum ShoalMain {
    static func main() async {
        ParentWatch.startIfAsked()
        FileDescriptorLimit.raise()
        await ShoalCommand.main()
    }
}

/// The `shoal` executable: a thin layer that parses arguments and calls the libraries.
struct ShoalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal",
        abstract: "Peer-to-peer file transfer: chunked, verified, parallel, compressed.",
        discussion: """
        A tracker keeps accounts and knows which peer shares what; every peer \
        both downloads and serves. See README.md and PROTOCOL.md.
        """,
        version: ShoalVersion.current,
        subcommands: [DemoCommand.self, PeerMenu.self, TrackerCommand.self, RegisterCommand.self, SeedCommand.self, GetCommand.self, ListCommand.self, DetailsCommand.self, ManifestCommand.self]
    )
}
