#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Measurements that show a shaped link does what it was told: iperf3 for
/// throughput, ping for the round trip.
public enum LinkCheck {
    /// The Debian packages these checks run.
    public static let packages = ["iperf3", "iputils-ping"]

    /// TCP throughput in Mbit/s (10^6 bits) from host `from` to host `to`:
    /// one iperf3 stream for `seconds`, the first second left out (slow start).
    public static func throughput(in lab: NetworkLab, from: String, to: String, seconds: Int = 3, port: Int = 5201) throws -> Double {
        let iperf = try LabCommand.require("iperf3", package: "iperf3")
        let server = try lab.address(of: to)
        let serverProcess = try startServer(iperf, in: lab, on: to, address: server, port: port)
        defer {
            if serverProcess.isRunning { kill(serverProcess.processIdentifier, SIGKILL) }
            LabCommand.waitForExit(serverProcess)
        }
        var last: (status: Int32, stdout: String, stderr: String) = (1, "", "")
        let command = try lab.prefix(for: from) + [iperf, "-c", server, "-p", "\(port)", "-t", "\(seconds + 1)", "-O", "1", "-J"]
        // The server may need a moment to listen: retry a refused connection, for at most 3 s.
        let deadline = Date().addingTimeInterval(3)
        repeat {
            last = try LabCommand.runAllowingFailure(command, timeout: Double(seconds) + 30)
            if last.status == 0 { break }
            usleep(100_000)
        } while Date() < deadline
        guard last.status == 0 else { throw LabError.commandFailed(command: command, status: last.status, output: last.stderr + last.stdout) }
        guard let json = try? JSONSerialization.jsonObject(with: Data(last.stdout.utf8)) as? [String: Any],
              let end = json["end"] as? [String: Any], let received = end["sum_received"] as? [String: Any],
              let bits = received["bits_per_second"] as? Double else {
            throw LabError.unreadableOutput(command: command, output: last.stdout)
        }
        return bits / 1e6
    }

    /// Sends `bytes` with one iperf3 stream from host `from` to host `to` and
    /// returns the bytes received on `to`'s interface per byte of payload:
    /// what TCP/IP itself costs on that link (headers, retransmissions), the
    /// yardstick for a download's received bytes per byte of file.
    public static func receiveOverhead(in lab: NetworkLab, from: String, to: String, bytes: Int, port: Int = 5202) throws -> Double {
        let iperf = try LabCommand.require("iperf3", package: "iperf3")
        let server = try lab.address(of: to)
        let serverProcess = try startServer(iperf, in: lab, on: to, address: server, port: port)
        defer {
            if serverProcess.isRunning { kill(serverProcess.processIdentifier, SIGKILL) }
            LabCommand.waitForExit(serverProcess)
        }
        let command = try lab.prefix(for: from) + [iperf, "-c", server, "-p", "\(port)", "-n", "\(bytes)", "-J"]
        var last: (status: Int32, stdout: String, stderr: String) = (1, "", "")
        var before: UInt64 = 0
        let deadline = Date().addingTimeInterval(3)
        repeat {
            before = try lab.receivedBytes(of: to)
            last = try LabCommand.runAllowingFailure(command, timeout: 120)
            if last.status == 0 { break }
            usleep(100_000)
        } while Date() < deadline
        guard last.status == 0 else { throw LabError.commandFailed(command: command, status: last.status, output: last.stderr + last.stdout) }
        let after = try lab.receivedBytes(of: to)
        guard let json = try? JSONSerialization.jsonObject(with: Data(last.stdout.utf8)) as? [String: Any],
              let end = json["end"] as? [String: Any], let received = end["sum_received"] as? [String: Any],
              let payload = (received["bytes"] as? Double) ?? (received["bytes"] as? Int).map(Double.init), payload > 0 else {
            throw LabError.unreadableOutput(command: command, output: last.stdout)
        }
        return Double(after - before) / payload
    }

    /// A one-off iperf3 server (-1) on host `name`, in the background; it
    /// exits after one test, when killed, or when the lab goes.
    private static func startServer(_ iperf: String, in lab: NetworkLab, on name: String, address: String, port: Int) throws -> Process {
        let prefix = try lab.prefix(for: name)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: prefix[0])
        process.arguments = Array(prefix.dropFirst()) + [iperf, "-s", "-1", "-B", address, "-p", "\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Round-trip times in ms from `from` to `to`: `count` pings, 0.2 s apart,
    /// timed in user space (`ping -U`): the kernel's receive timestamps are
    /// taken before the ingress delay, and would not show it.
    public static func roundTrip(in lab: NetworkLab, from: String, to: String, count: Int = 10) throws -> (min: Double, average: Double, max: Double, lost: Int) {
        let ping = try LabCommand.require("ping", package: "iputils-ping")
        let command = try lab.prefix(for: from) + [ping, "-U", "-q", "-n", "-c", "\(count)", "-i", "0.2", "-W", "2", try lab.address(of: to)]
        let result = try LabCommand.runAllowingFailure(command, timeout: Double(count) * 0.2 + 10)
        // "10 packets transmitted, 9 received, ..." and "rtt min/avg/max/mdev = 20.1/20.4/21.0/0.2 ms".
        let text = result.stdout
        guard let rttLine = text.split(separator: "\n").first(where: { $0.hasPrefix("rtt") }),
              let numbers = rttLine.split(separator: "=").last?.split(separator: " ").first?.split(separator: "/").compactMap({ Double($0) }),
              numbers.count >= 3,
              let counts = text.split(separator: "\n").first(where: { $0.contains("packets transmitted") }) else {
            throw LabError.unreadableOutput(command: command, output: text + result.stderr)
        }
        let words = counts.split(separator: " ")
        let sent = Int(words.first ?? "") ?? count
        let received = words.firstIndex(where: { $0.hasPrefix("received") }).flatMap { $0 > 0 ? Int(words[$0 - 1]) : nil } ?? 0
        return (numbers[0], numbers[1], numbers[2], sent - received)
    }
}
