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

    /// A group running `services` until SIGTERM or SIGINT. `ready` is
    /// printed on stdout once the group traps those signals: a script that
    /// waits for that line and then sends SIGTERM gets a graceful stop, never
    /// the default action that kills the process before the group runs.
    func group(_ services: [ServiceGroupConfiguration.ServiceConfiguration], ready: [String] = [], logger: Logger) -> ServiceGroup {
        let announcement = ServiceGroupConfiguration.ServiceConfiguration(service: ReadyAnnouncement(lines: ready), successTerminationBehavior: .ignore)
        var configuration = ServiceGroupConfiguration(services: [announcement] + services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .milliseconds(Int64(drainSeconds * 1000))
        configuration.maximumCancellationDuration = Self.cancellationGrace
        return ServiceGroup(configuration: configuration)
    }

    /// The deadline, for messages.
    var described: String { drainSeconds == drainSeconds.rounded() ? "\(Int(drainSeconds)) s" : "\(drainSeconds) s" }
}

/// Prints a command's ready lines from inside its service group, which has
/// trapped SIGTERM and SIGINT before it starts any service.
private struct ReadyAnnouncement: Service {
    let lines: [String]

    func run() async throws {
        for line in lines { Output.line(line) }
    }
}
