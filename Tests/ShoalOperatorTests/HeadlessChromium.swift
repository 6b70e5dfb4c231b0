#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Debian's `chromium`, headless, driven over the Chrome DevTools Protocol on
/// `--remote-debugging-pipe`: the browser reads JSON commands on its fd 3 and
/// writes replies and events on its fd 4, each message ended by a NUL byte.
/// No port, no WebSocket, nothing another process on the machine can reach.
///
/// It runs in a process group of its own with a temporary profile
/// (`--user-data-dir`); ``close()`` kills the whole group and removes the
/// profile (call it in every path: `defer` does not await, so tests use
/// ``with(_:)``). Replies are read on a thread of its own, never on one of
/// Swift concurrency's threads.
final class HeadlessChromium: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The browser, found on PATH or where Debian installs it.
    static func executable() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") + ["/usr/bin"] {
            for name in ["chromium", "chromium-browser"] {
                let candidate = "\(folder)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        throw Failure(description: "chromium is not installed: the browser test needs Debian's package `chromium` (apt-get install chromium; .ci/run installs it when missing)")
    }

    private let pid: pid_t
    private let commands: Int32
    private let profile: String
    private let log: String
    private let lock = NSLock()
    private var nextID = 0
    private var pending: [Int: CheckedContinuation<Data, any Error>] = [:]
    private var ended: String?

    private init(pid: pid_t, commands: Int32, replies: Int32, profile: String, log: String) {
        self.pid = pid
        self.commands = commands
        self.profile = profile
        self.log = log
        Thread { [self] in readReplies(replies) }.start()
    }

    /// Runs `body` with a fresh browser and closes it afterwards, also when `body` throws.
    static func with<T>(_ body: (HeadlessChromium) async throws -> T) async throws -> T {
        let browser = try launch()
        do {
            let result = try await body(browser)
            browser.close()
            return result
        } catch {
            let log = browser.logTail()
            browser.close()
            throw Failure(description: "\(error)\(log.isEmpty ? "" : "\nchromium's stderr ends with:\n\(log)")")
        }
    }

    /// Starts `chromium --headless --remote-debugging-pipe` with a new profile.
    static func launch() throws -> HeadlessChromium {
        let binary = try executable()
        let profile = NSTemporaryDirectory() + "shoal-chromium-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: profile, withIntermediateDirectories: true)
        let log = profile + ".log"
        var arguments = [binary, "--headless", "--remote-debugging-pipe", "--user-data-dir=\(profile)",
                         "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                         "--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "about:blank"]
        if getuid() == 0 { arguments.insert("--no-sandbox", at: 1) }  // Chromium's sandbox refuses to run as root.

        var toBrowser: [Int32] = [0, 0], fromBrowser: [Int32] = [0, 0]
        guard pipe(&toBrowser) == 0, pipe(&fromBrowser) == 0 else {
            throw Failure(description: "cannot make pipes for chromium: \(String(cString: strerror(errno)))")
        }
        // No other child of the test run inherits them; the browser gets its two as fds 3 and 4.
        for fd in toBrowser + fromBrowser { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_adddup2(&actions, toBrowser[0], 3)
        posix_spawn_file_actions_adddup2(&actions, fromBrowser[1], 4)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let result = posix_spawn(&pid, binary, &actions, &attributes, argv, environ)
        Glibc.close(toBrowser[0])
        Glibc.close(fromBrowser[1])
        guard result == 0 else {
            Glibc.close(toBrowser[1])
            Glibc.close(fromBrowser[0])
            try? FileManager.default.removeItem(atPath: profile)
            throw Failure(description: "cannot start \(binary): \(String(cString: strerror(result)))")
        }
        return HeadlessChromium(pid: pid, commands: toBrowser[1], replies: fromBrowser[0], profile: profile, log: log)
    }

    /// Sends one command (to the page of `session`, or the browser) and waits
    /// up to `timeout` seconds for its result, as JSON.
    func send(_ method: String, _ parameters: [String: Any] = [:], session: String? = nil, timeout: Double = 30) async throws -> Data {
        let id: Int = lock.withLock {
            nextID += 1
            return nextID
        }
        var message: [String: Any] = ["id": id, "method": method, "params": parameters]
        if let session { message["sessionId"] = session }
        var bytes = [UInt8](try JSONSerialization.data(withJSONObject: message))
        bytes.append(0)
        let timer = Task { [self] in
            try await Task.sleep(for: .seconds(timeout))
            finish(id, .failure(Failure(description: "chromium did not answer \(method) within \(timeout) s")))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let gone: String? = lock.withLock {
                if let ended { return ended }
                pending[id] = continuation
                return nil
            }
            if let gone {
                continuation.resume(throwing: Failure(description: gone))
                return
            }
            let written = bytes.withUnsafeBytes { buffer -> Bool in
                var offset = 0
                while offset < buffer.count {
                    let n = Glibc.write(commands, buffer.baseAddress! + offset, buffer.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return false }
                    offset += n
                }
                return true
            }
            if !written { finish(id, .failure(Failure(description: "cannot write to chromium's pipe (it exited?)"))) }
        }
    }

    /// Opens `url` in a new tab; the session id to talk to its page.
    func open(_ url: String) async throws -> String {
        let target = try Self.object(try await send("Target.createTarget", ["url": url]))
        guard let targetID = target["targetId"] as? String else { throw Failure(description: "Target.createTarget gave no targetId") }
        let attached = try Self.object(try await send("Target.attachToTarget", ["targetId": targetID, "flatten": true]))
        guard let session = attached["sessionId"] as? String else { throw Failure(description: "Target.attachToTarget gave no sessionId") }
        return session
    }

    /// The value of a JavaScript expression in the page of `session` (strings, numbers, booleans, JSON-able values).
    func evaluate(_ expression: String, session: String) async throws -> Any? {
        let reply = try Self.object(try await send("Runtime.evaluate", ["expression": expression, "returnByValue": true], session: session))
        if let exception = reply["exceptionDetails"] { throw Failure(description: "\(expression) threw: \(exception)") }
        return (reply["result"] as? [String: Any])?["value"]
    }

    /// Evaluates `expression` until it is `true`, up to `timeout` seconds; its last value otherwise.
    @discardableResult
    func waitUntil(_ expression: String, session: String, timeout: Double = 30) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            // A navigation under way destroys the page's context: that is "not yet", not a failure.
            if (try? await evaluate(expression, session: session)) as? Bool == true { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Kills the browser's process group and removes its profile.
    func close() {
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        Glibc.close(commands)
        try? FileManager.default.removeItem(atPath: profile)
        try? FileManager.default.removeItem(atPath: log)
    }

    /// The last lines chromium wrote on stderr.
    func logTail() -> String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }

    // MARK: - Replies

    private static func object(_ data: Data) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Failure(description: "chromium answered with something that is not a JSON object")
        }
        return object
    }

    private func finish(_ id: Int, _ result: Result<Data, any Error>) {
        let continuation = lock.withLock { pending.removeValue(forKey: id) }
        continuation?.resume(with: result)
    }

    /// Reads NUL-ended messages until the pipe closes; resumes the command each reply answers.
    private func readReplies(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var message: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            for byte in buffer[0..<n] {
                if byte != 0 {
                    message.append(byte)
                    continue
                }
                dispatch(Data(message))
                message.removeAll(keepingCapacity: true)
            }
        }
        Glibc.close(fd)
        let waiting: [CheckedContinuation<Data, any Error>] = lock.withLock {
            ended = "chromium closed its DevTools pipe (it exited)"
            defer { pending.removeAll() }
            return Array(pending.values)
        }
        for continuation in waiting { continuation.resume(throwing: Failure(description: "chromium closed its DevTools pipe (it exited)")) }
    }

    private func dispatch(_ data: Data) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let id = object["id"] as? Int else { return }
        if let error = object["error"] as? [String: Any] {
            finish(id, .failure(Failure(description: "chromium refused command \(id): \(error["message"] ?? error)")))
        } else {
            let result = (object["result"] as? [String: Any]) ?? [:]
            finish(id, Result { try JSONSerialization.data(withJSONObject: result) })
        }
    }
}
