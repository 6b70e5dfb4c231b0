import ArgumentParser
import Foundation
import Logging
import ShoalNet
import ShoalPeer

/// `--user`, for commands that log in.
struct UserOptions: ParsableArguments {
    @Option(help: "The account to log in as (password from SHOAL_PASSWORD or a prompt).")
    var user: String
}

/// `--dir` and `--port`, for commands that share a folder.
struct FolderOptions: ParsableArguments {
    @Option(help: "The folder to share and download into.")
    var dir: String

    @Option(help: "The port to serve chunks on; 0 picks a free one.")
    var port = 0

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 ... 65535; got \(port)") }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isFolder), isFolder.boolValue else {
            throw ValidationError("--dir \(dir) is not an existing folder; create it first")
        }
    }
}

/// Logging for peer commands: warnings and up on stderr, unless asked for more.
enum PeerLogging {
    static func bootstrap(level: Logger.Level = .warning) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Runs `body`, turning library errors into one clear line and a non-zero exit.
func withClearErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as CLIError {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        throw CLIError("\(error)")
    }
}
