import ArgumentParser
import Logging
import ServiceLifecycle

/// `--drain-seconds`, and the service group a long-running command runs in:
/// SIGTERM or SIGINT starts a graceful shutdown, services stop in the
/// reverse of their order, and whatever still runs at the deadline is
/// cancelled. (swift-service-lifecycle traps the signals: no handler of our own.)
struct ShutdownOptions: ParsableArguments {
    @Option(help: ArgumentHelp("On SIGTERM or SIGINT, let what is in progress finish for at most this many seconds, then stop.", valueName: "seconds"))
    var drainSeconds: Double = 10

    func validate() throws {
        guard drainSeconds >= 0, drainSeconds <= 3600 else { throw ValidationError("--drain-seconds must be 0 ... 3600; got \(drainSeconds)") }
    }

    /// After the deadline, services are cancelled; one that still has not
    /// stopped this much later is a bug, and the library ends the process.
    static let cancellationGrace = Duration.seconds(5)

    /// A group running `services` until SIGTERM or SIGINT.
    func group(_ services: [ServiceGroupConfiguration.ServiceConfiguration], logger: Logger) -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .milliseconds(Int64(drainSeconds * 1000))
        configuration.maximumCancellationDuration = Self.cancellationGrace
        return ServiceGroup(configuration: configuration)
    }

    /// The deadline, for messages.
    var described: String { drainSeconds == drainSeconds.rounded() ? "\(Int(drainSeconds)) s" : "\(drainSeconds) s" }
}
