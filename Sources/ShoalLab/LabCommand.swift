#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Runs the lab's helper programs (`ip`, `tc`, `iptables`, `iperf3`, `ping`):
/// finds them, bounds every run in time, and turns failures into ``LabError``.
public enum LabCommand {
    /// Folders searched after `$PATH`: root's tools live in the sbin folders,
    /// which a non-login shell's `$PATH` may lack.
    static let systemFolders = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// The full path of `tool`, or nil when it is not installed.
    public static func find(_ tool: String) -> String? {
        if tool.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for folder in path + systemFolders where FileManager.default.isExecutableFile(atPath: folder + "/" + tool) {
            return folder + "/" + tool
        }
        return nil
    }

    /// The full path of `tool`, or ``LabError/missingTool(tool:package:)`` naming the Debian package.
    public static func require(_ tool: String, package: String) throws -> String {
        guard let path = find(tool) else { throw LabError.missingTool(tool: tool, package: package) }
        return path
    }

    /// Runs `command` (its first element found like ``find(_:)``) and returns its stdout.
    /// Throws when it cannot start, exits non-zero, or runs past `timeout` seconds (then it is killed).
    @discardableResult
    public static func run(_ command: [String], timeout: Double = 30) throws -> String {
        let result = try runAllowingFailure(command, timeout: timeout)
        guard result.status == 0 else {
            throw LabError.commandFailed(command: command, status: result.status, output: result.stderr + result.stdout)
        }
        return result.stdout
    }

    /// Like ``run(_:timeout:)`` but returns the exit status instead of throwing on a non-zero one.
    public static func runAllowingFailure(_ command: [String], timeout: Double = 30) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let first = command.first else { throw LabError.launchFailed(command: command, reason: "empty command") }
        guard let executable = find(first) else { throw LabError.launchFailed(command: command, reason: "\(first) not found") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(command.dropFirst())
        process.standardInput = FileHandle.nullDevice
        // Output goes to files, not pipes: a daemon started by the command
        // (iperf3 -D) would hold a pipe open and a reader would never see its end.
        let outFile = Self.scratchFile("out"), errFile = Self.scratchFile("err")
        defer { unlink(outFile.path); unlink(errFile.path) }
        process.standardOutput = outFile.handle
        process.standardError = errFile.handle
        do { try process.run() } catch {
            throw LabError.launchFailed(command: command, reason: "\(error)")
        }
        try? outFile.handle.close()
        try? errFile.handle.close()
        let pid = process.processIdentifier
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32?
        // Polled, never `waitUntilExit`: Foundation's Process has been seen
        // to miss a child's exit (the child a zombie nobody reaps), and its
        // `waitUntilExit` then spins for ever; the kernel is asked too.
        while status == nil {
            if !process.isRunning {
                status = process.terminationStatus
            } else if let exited = Self.exitStatus(of: pid) {
                status = exited
            } else if Date() >= deadline {
                kill(pid, SIGKILL)
                throw LabError.timedOut(command: command, seconds: timeout)
            } else {
                usleep(2_000)
            }
        }
        let stdout = (try? String(contentsOfFile: outFile.path, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errFile.path, encoding: .utf8)) ?? ""
        return (status ?? -1, stdout, stderr)
    }

    /// Waits until `process` has exited, at most `timeout` seconds; whether it
    /// did. Polled as ``runAllowingFailure(_:timeout:)`` does, never with
    /// `waitUntilExit` (which can spin for ever on a child Foundation missed).
    @discardableResult
    public static func waitForExit(_ process: Process, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && exitStatus(of: process.processIdentifier) == nil {
            if Date() >= deadline { return false }
            usleep(2_000)
        }
        return true
    }

    /// The exit status of child `pid` if it has exited, read without reaping
    /// it (`WNOWAIT`: Foundation's Process still reaps it); 128 + the signal
    /// when a signal ended it. Nil while it runs, or once it is reaped.
    static func exitStatus(of pid: pid_t) -> Int32? {
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return nil }
        let child = info._sifields._sigchld
        guard child.si_pid == pid else { return nil }
        return info.si_code == Int32(CLD_EXITED) ? child.si_status : 128 + child.si_status
    }

    private static func scratchFile(_ label: String) -> (path: String, handle: FileHandle) {
        var template = Array((NSTemporaryDirectory() + "shoal-lab-\(label)-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let path = String(cString: template)
        return (path, FileHandle(fileDescriptor: fd, closeOnDealloc: true))
    }
}
