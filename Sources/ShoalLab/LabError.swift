/// What went wrong while building, shaping or tearing down a ``NetworkLab``;
/// each message says what failed and what to do about it.
public enum LabError: Error, CustomStringConvertible, Sendable {
    /// Network namespaces, veths and qdiscs need root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
    case notRoot(uid: UInt32)
    /// A program the lab runs is not installed.
    case missingTool(tool: String, package: String)
    /// A command ran but failed; `output` is what it printed on stderr (and stdout).
    case commandFailed(command: [String], status: Int32, output: String)
    /// A command could not be started at all.
    case launchFailed(command: [String], reason: String)
    /// A command did not finish in time and was killed.
    case timedOut(command: [String], seconds: Double)
    /// A host name that is not in this lab, or that cannot name a namespace.
    case unknownHost(String)
    /// A host name that is empty, too long or has characters other than a-z, 0-9.
    case badHostName(String)
    /// More hosts than the lab's /24 can address.
    case tooManyHosts(Int)
    /// A link shape outside what can be emulated (negative rate or delay, loss outside 0 ... 1).
    case badShape(host: String, reason: String)
    /// A shape with a delay, but no delayer program was given to the lab.
    case delayerNeeded(host: String)
    /// The delayer did not bind its queues.
    case delayerFailed(host: String, output: String)
    /// A measurement tool printed something the lab could not read.
    case unreadableOutput(command: [String], output: String)

    public var description: String {
        switch self {
        case .notRoot(let uid):
            return "network namespaces need root, and this process runs as uid \(uid): run the tests (or shoal-bench links) as root, e.g. with sudo"
        case .missingTool(let tool, let package):
            return "\(tool) is not installed: install Debian's \(package) (apt-get install \(package)); .ci/run does this when it is missing"
        case .commandFailed(let command, let status, let output):
            let said = output.trimmingCharacters(in: .whitespacesAndNewlines)
            return "`\(command.joined(separator: " "))` exited with status \(status)\(said.isEmpty ? "" : ": \(said)")"
                + (said.contains("Operation not permitted") ? " (run as root, outside a container that forbids network namespaces)" : "")
        case .launchFailed(let command, let reason):
            return "could not start `\(command.joined(separator: " "))`: \(reason)"
        case .timedOut(let command, let seconds):
            return "`\(command.joined(separator: " "))` did not finish within \(seconds) s and was killed"
        case .unknownHost(let name):
            return "no host named \(name) in this lab: use one of the names given to NetworkLab(hosts:)"
        case .badHostName(let name):
            return "bad host name \"\(name)\": use 1 to 12 characters a-z and 0-9"
        case .tooManyHosts(let count):
            return "\(count) hosts: a lab addresses at most \(NetworkLab.maxHosts) hosts in 198.18.0.0/24"
        case .badShape(let host, let reason):
            return "cannot shape \(host)'s link: \(reason)"
        case .delayerNeeded(let host):
            return "\(host)'s link needs a delay, but the lab has no delayer program: build Benchmarks/LinkDelayer/link-delayer.c (LinkDelayer.build) and set NetworkLab.delayer"
        case .delayerFailed(let host, let output):
            return "the link delayer for \(host) did not start: \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
        case .unreadableOutput(let command, let output):
            return "could not read the output of `\(command.joined(separator: " "))`: \(output.prefix(300))"
        }
    }
}
