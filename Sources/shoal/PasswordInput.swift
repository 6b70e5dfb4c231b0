#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Where passwords come from: the `SHOAL_PASSWORD` environment variable, or a
/// prompt on the terminal that does not echo. Never a command-line flag
/// (flags show in `ps` and shell history).
enum PasswordInput {
    static func read(prompt: String = "Password: ") throws -> String {
        if let password = ProcessInfo.processInfo.environment["SHOAL_PASSWORD"], !password.isEmpty { return password }
        guard let password = readHidden(prompt: prompt) else {
            throw CLIError("no password: set SHOAL_PASSWORD, or run in a terminal to be asked for it")
        }
        return password
    }

    /// Reads a line from the terminal with echo off; nil if there is no terminal.
    static func readHidden(prompt: String) -> String? {
        let tty = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard tty >= 0 else { return nil }
        defer { close(tty) }
        var original = termios()
        guard tcgetattr(tty, &original) == 0 else { return nil }
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        _ = prompt.withCString { write(tty, $0, strlen($0)) }
        tcsetattr(tty, TCSAFLUSH, &silent)
        defer {
            tcsetattr(tty, TCSAFLUSH, &original)
            _ = write(tty, "\n", 1)
        }
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(tty, &byte, 1) == 1, byte != 0x0A { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
