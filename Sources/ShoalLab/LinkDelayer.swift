import Foundation

/// The `link-delayer` program (`Benchmarks/LinkDelayer/link-delayer.c`):
/// holds packets queued by NFQUEUE for a fixed time, then accepts them.
///
/// It is a small C program against Debian's libnetfilter-queue, compiled here
/// with `cc` on first use, so that the Swift package itself never needs
/// `libnetfilter-queue-dev`.
public enum LinkDelayer {
    /// The Debian packages it needs to build and to be fed packets.
    public static let packages = ["libnetfilter-queue-dev", "iptables"]

    /// The source file in this checkout.
    public static var defaultSource: String {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Benchmarks/LinkDelayer/link-delayer.c").path
    }

    /// Compiles `source` into `output` unless `output` is already newer than
    /// it; returns `output`.
    @discardableResult
    public static func build(source: String = defaultSource, output: String) throws -> String {
        let files = FileManager.default
        guard files.fileExists(atPath: source) else {
            throw LabError.launchFailed(command: ["cc", source], reason: "no delayer source at \(source); pass its path")
        }
        if let built = try? files.attributesOfItem(atPath: output)[.modificationDate] as? Date,
           let written = try? files.attributesOfItem(atPath: source)[.modificationDate] as? Date,
           built > written, files.isExecutableFile(atPath: output) {
            return output
        }
        let cc = LabCommand.find("cc") ?? LabCommand.find("gcc") ?? LabCommand.find("clang")
        guard let cc else { throw LabError.missingTool(tool: "cc", package: "gcc") }
        try LabCommand.run([cc, "-O2", "-Wall", "-o", output, source, "-lnetfilter_queue", "-lnfnetlink"], timeout: 120)
        return output
    }
}
