import ArgumentParser
import ShoalNet
import ShoalPeer

extension Endpoint: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

/// `--tracker HOST:PORT[,HOST:PORT…]` and how its certificate is trusted,
/// shared by every command that talks to a tracker.
struct TrackerOptions: ParsableArguments {
    @Option(name: .customLong("tracker"),
            help: ArgumentHelp("The tracker's address, HOST:PORT; several instances of one tracker (sharing a database) separated by commas, tried in turn when one is lost.",
                               valueName: "host:port[,host:port…]"),
            transform: { text in
                do {
                    return try TrackerAddresses(parsing: text)
                } catch {
                    throw ValidationError("--tracker: \(error)")
                }
            })
    var tracker = TrackerAddresses(Endpoint(host: "127.0.0.1", port: 6969))

    @Option(name: .customLong("tracker-fingerprint"),
            help: ArgumentHelp("The SHA-256 fingerprint of the tracker's certificate, as it prints it at start; default: the one pinned in the known-trackers file, or the one met first.",
                               valueName: "hex"))
    var trackerFingerprint: String?

    @Option(name: .customLong("known-trackers"),
            help: ArgumentHelp("The file of pinned tracker fingerprints; default: $SHOAL_KNOWN_TRACKERS or ~/.shoal/known_trackers.", valueName: "path"))
    var knownTrackers: String?

    @Flag(help: "Talk to the tracker in clear, without TLS (passwords and tokens readable on the network); only for a tracker that runs with --insecure.")
    var insecure = false

    func validate() throws {
        if let trackerFingerprint {
            do {
                _ = try CertificateFingerprint(parsing: trackerFingerprint)
            } catch {
                throw ValidationError("--tracker-fingerprint: \(error)")
            }
            if insecure { throw ValidationError("--tracker-fingerprint and --insecure contradict each other; give one") }
        }
    }

    /// How the tracker is trusted (validated already).
    var trust: TrackerTrust {
        if insecure { return .insecure }
        if let trackerFingerprint, let fingerprint = try? CertificateFingerprint(parsing: trackerFingerprint) { return .pinned(fingerprint) }
        return .knownTrackers(KnownTrackers(path: knownTrackers ?? KnownTrackers.defaultPath))
    }
}
