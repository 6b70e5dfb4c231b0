#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The `shoal` executable run as a real process, for tests of the command line.
public final class ShoalProcess: @unchecked Sendable {
    // Mutated only from the reader thread, read after it has finished or under the lock.
    public let process = Process()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private let lock = NSLock()
    private var stdoutLines: [String] = []
    private var stderrText = ""
    /// Readers (stdout, stderr) that have reached end of file.
    private var readersDone = 0
    /// The known-trackers file of this process, when the test did not name one: its own, removed with it.
    private let knownTrackers: String?

    /// The built `shoal` binary: `$SHOAL_BINARY`, or the debug build beside the tests.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["SHOAL_BINARY"] { return path }
        // The test bundle sits in the same build folder as the executable.
        let bundle = URL(fileURLWithPath: CommandLine.arguments.first ?? "")
        var folder = Bundle.main.bundleURL
        for candidate in [bundle.deletingLastPathComponent(), folder, folder.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("shoal").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        folder = URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent().appendingPathComponent(".build/debug")
        return folder.appendingPathComponent("shoal").path
    }

    /// Starts `shoal ARGUMENTS` with `environment` added to this process's.
    /// A non-empty `launcher` runs it through that argv prefix instead, e.g.
    /// `ip netns exec NS` (which execs `shoal`, so the pid is still shoal's).
    public init(_ arguments: [String], environment: [String: String] = [:], currentDirectory: String? = nil, stdin: String? = nil,
                launcher: [String] = []) throws {
        if let first = launcher.first {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = Array(launcher.dropFirst()) + [Self.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = arguments
        }
        // Each process pins trackers in a file of its own (trust on first use),
        // never in the user's ~/.shoal: trackers of other tests reuse ports with other keys.
        var environment = environment
        if environment["SHOAL_KNOWN_TRACKERS"] == nil {
            let path = NSTemporaryDirectory() + "shoal-known-trackers-\(UUID().uuidString)"
            environment["SHOAL_KNOWN_TRACKERS"] = path
            knownTrackers = path
        } else {
            knownTrackers = nil
        }
        // Children end with the test run, even one that crashes.
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.merging(["SHOAL_EXIT_WITH_PARENT": "1"]) { $1 }
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            let writer = input.fileHandleForWriting
            Thread {
                writer.write(Data(stdin.utf8))
                try? writer.close()
            }.start()
        }
        let out = stdoutPipe.fileHandleForReading.fileDescriptor
        let err = stderrPipe.fileHandleForReading.fileDescriptor
        Thread {
            var pending = Data()
            while true {
                let data = Self.read(out)
                if data.isEmpty { break }
                pending.append(data)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    self.lock.withLock { self.stdoutLines.append(line) }
                }
            }
            self.lock.withLock { self.readersDone += 1 }
        }.start()
        Thread {
            while true {
                let data = Self.read(err)
                if data.isEmpty { break }
                self.lock.withLock { self.stderrText += String(decoding: data, as: UTF8.self) }
            }
            self.lock.withLock { self.readersDone += 1 }
        }.start()
    }

    /// Reads what is available from `fd`, retrying when a signal (a child
    /// exiting) interrupts the call; empty at end of file.
    private static func read(_ fd: Int32) -> Data {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { return Data(buffer[0..<n]) }
            if n < 0 && errno == EINTR { continue }
            return Data()
        }
    }

    /// Lines printed on stdout so far.
    public var lines: [String] { lock.withLock { stdoutLines } }
    /// Everything printed on stderr so far.
    public var errors: String { lock.withLock { stderrText } }

    /// Waits (polling, up to `timeout` seconds) for a stdout line satisfying `match`.
    public func waitForLine(timeout: Double = 20, _ match: (String) -> Bool) async throws -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let line = lines.first(where: match) { return line }
            if !process.isRunning { return lines.first(where: match) }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Waits (polling, up to `timeout` seconds) until stderr contains `text`.
    public func waitForErrors(containing text: String, timeout: Double = 20) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if errors.contains(text) { return true }
            if !process.isRunning { return errors.contains(text) }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Sends `signal` and waits (up to `timeout` seconds) for the exit status; nil if it did not exit.
    public func stop(signal: Int32 = SIGTERM, timeout: Double = 20) async throws -> Int32? {
        if process.isRunning { kill(process.processIdentifier, signal) }
        return try await waitForExit(timeout: timeout)
    }

    /// Waits for the process to exit; its status, or nil after `timeout` (then it is killed).
    public func waitForExit(timeout: Double = 60) async throws -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            return nil
        }
        // The process is gone, but its last output may still sit in the pipes:
        // wait (briefly) until both readers have seen end of file.
        let drained = Date().addingTimeInterval(5)
        while lock.withLock({ readersDone }) < 2 && Date() < drained { try await Task.sleep(for: .milliseconds(10)) }
        return process.terminationStatus
    }

    deinit {
        if let knownTrackers { try? FileManager.default.removeItem(atPath: knownTrackers) }
    }

    /// Parses `certificate fingerprint SHA-256 AB:CD:…` (a tracker's second line) into the fingerprint.
    public static func fingerprint(fromLine line: String) -> String? {
        let prefix = "certificate fingerprint SHA-256 "
        guard line.hasPrefix(prefix) else { return nil }
        return String(line.dropFirst(prefix.count))
    }

    /// Waits for a tracker's fingerprint line; the fingerprint, or nil.
    public func waitForFingerprint(timeout: Double = 20) async throws -> String? {
        try await waitForLine(timeout: timeout) { $0.hasPrefix("certificate fingerprint") }.flatMap(Self.fingerprint(fromLine:))
    }

    /// Parses `listening on HOST:PORT` into the port.
    public static func port(fromListeningLine line: String) -> Int? {
        guard line.hasPrefix("listening on "), let colon = line.lastIndex(of: ":") else { return nil }
        return Int(line[line.index(after: colon)...])
    }
}
