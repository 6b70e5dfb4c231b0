#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Debian packages the lab's benchmark needs, installed with apt-get when missing.
///
/// Only `shoal-bench links` calls this (it runs as root); the test suite needs
/// nothing beyond `iproute2`, which `.ci/run` installs.
public enum LabPackages {
    /// The packages among `packages` that `dpkg -s` does not report installed.
    public static func missing(_ packages: [String]) -> [String] {
        packages.filter { package in
            guard let result = try? LabCommand.runAllowingFailure(["dpkg-query", "-W", "-f=${Status}", package], timeout: 30) else { return true }
            return result.status != 0 || !result.stdout.contains("install ok installed")
        }
    }

    /// Installs whichever of `packages` are missing (`apt-get update` first, then `apt-get install -y`).
    /// Returns the packages it installed.
    @discardableResult
    public static func install(_ packages: [String], log: (String) -> Void) throws -> [String] {
        let needed = missing(packages)
        guard !needed.isEmpty else { return [] }
        guard geteuid() == 0 else { throw LabError.notRoot(uid: geteuid()) }
        _ = try LabCommand.require("apt-get", package: "apt")
        log("installing \(needed.joined(separator: " ")) with apt-get ...")
        setenv("DEBIAN_FRONTEND", "noninteractive", 1)
        try LabCommand.run(["apt-get", "update", "-q"], timeout: 300)
        try LabCommand.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + needed, timeout: 600)
        return needed
    }
}
