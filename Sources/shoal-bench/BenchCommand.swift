import ArgumentParser

/// `shoal-bench`: figures, not tests. Run with `swift run -c release shoal-bench ...`.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal-bench",
        abstract: "Benchmarks for Shoal (throughput figures printed beside standard tools).",
        subcommands: [CodecBenchmark.self, TrackerBenchmark.self, EndToEndBenchmark.self, LinksBenchmark.self, PlanBenchmark.self, FaultBenchmark.self, FloodBenchmark.self, MessagesBenchmark.self],
        defaultSubcommand: CodecBenchmark.self
    )
}
