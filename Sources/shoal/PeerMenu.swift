import ArgumentParser
import Foundation
import Logging
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalWire

/// `shoal peer --dir DIR [--listen ADDRESS] [--advertise ADDRESS]`: the interactive menu of the original,
/// with its flow and wording, over the new engine.
struct PeerMenu: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer", abstract: "The interactive peer: register or log in, then list, download and inspect files.")

    @OptionGroup var tracker: TrackerOptions
    @OptionGroup var folder: FolderOptions
    @OptionGroup var network: NetworkOptions
    @Option(help: "Log level on stderr.") var logLevel: Logger.Level = .warning

    func run() async throws {
        PeerLogging.bootstrap(level: logLevel)
        var input = LineInput()
        Output.line("WELCOME TO THE PEER-TO-PEER FILE SHARING SYSTEM !")
        while true {
            guard let choice = input.prompt("Enter 'R' for registration or 'L' for login: ") else { return }
            let registering: Bool
            switch choice.lowercased() {
            case "r": registering = true
            case "l": registering = false
            default:
                Output.line("Please enter R or L.")
                continue
            }
            Output.line("")
            Output.line(registering ? "Registration:" : "Login:")
            guard let user = input.prompt("Please enter your name: "), let password = input.password("Please enter your password: ") else { return }
            if registering {
                do {
                    try await TrackerSession.register(trackers: tracker.tracker, trust: tracker.trust, user: user, password: password)
                    Output.line("Registration successful")
                } catch {
                    Output.line("Registration failed: \(Self.explain(error))")
                    Output.line("")
                    continue
                }
            }
            let peer: Peer
            do {
                peer = try await Peer.start(directory: folder.dir, tracker: tracker.tracker, trust: tracker.trust, user: user, password: password,
                                            encrypt: network.encrypt,
                                            listen: network.listenEndpoint, advertiseHost: network.advertised.host,
                                            advertisePort: network.advertised.port, chunkSize: folder.chunkSize,
                                            maxUpload: network.uploadRate, maxDownload: network.downloadRate,
                                            downloadConfiguration: network.downloadConfiguration,
                                            logger: Logger(label: "shoal.peer")) { name in Output.line("Hashing \(name) ...") }
            } catch {
                Output.line("Login failed: \(Self.explain(error))")
                Output.line("")
                continue
            }
            let shared = peer.library.announcement().map(\.name).sorted()
            Output.line("Logged in as \(user); serving \(peer.folder.path) on port \(peer.server.port).")
            Output.line(shared.isEmpty ? "No files shared yet." : "Shared files: \(shared.joined(separator: ", "))")
            Output.line("")
            Output.line("Peer informed the tracker about its shared files successfully.")
            let exit = await menu(peer: peer, input: &input)
            await peer.stop()
            if exit {
                Output.line("Logged out. Goodbye.")
                return
            }
            Output.line("Logged out successfully.")
            Output.line("WELCOME TO THE PEER-TO-PEER FILE SHARING SYSTEM !")
        }
    }

    /// The Peer Menu; returns true to exit, false to log out.
    private func menu(peer: Peer, input: inout LineInput) async -> Bool {
        while true {
            Output.line("")
            Output.line("Peer Menu:")
            Output.line("1. List available files")
            Output.line("2. Download a file")
            Output.line("3. File details")
            Output.line("4. Logout")
            Output.line("5. Exit")
            Output.line("")
            guard let choice = input.prompt("Enter your choice (1-5): ") else { return true }
            switch choice {
            case "1":
                do {
                    let files = try await peer.session.list()
                    let mine = Set(peer.library.announcement().map(\.contentID))
                    Output.line(files.isEmpty ? "No files are available." : "Available files:")
                    for file in files {
                        let note = mine.contains(file.contentID) ? "  (in your folder)" : ""
                        let partial = file.partialHolders > 0 ? " + \(file.partialHolders) partial" : ""
                        Output.line("  \(file.name)  \(Output.bytes(file.size))  \(file.holders) holder\(file.holders == 1 ? "" : "s")\(partial)\(note)")
                    }
                } catch {
                    Output.line("Error retrieving the list of files: \(Self.explain(error))")
                }
            case "2":
                Output.line("")
                guard let name = input.prompt("Enter the filename to download: ") else { return true }
                let line = ProgressLine()
                do {
                    var content: String?
                    if case let .some(.ambiguous(_, choices, more)) = await Self.ambiguity(peer: peer, name: name) {
                        Output.line("\(choices.count + (more ?? 0)) different files are shared as \(name.debugDescription):")
                        for (index, choice) in choices.enumerated() { Output.line("  \(index + 1). \(DownloadError.describe(choice))") }
                        guard let answer = input.prompt("Enter the number of the file to download (1-\(choices.count)): ") else { return true }
                        guard let number = Int(answer), (1...choices.count).contains(number) else {
                            Output.line("Invalid choice \(answer.debugDescription): nothing downloaded.")
                            continue
                        }
                        content = choices[number - 1].contentID.hex
                    }
                    let result = try await peer.download(name: name, content: content) { line.update($0) }
                    Output.line(String(format: "FILE DOWNLOADED: %@ (%@) in %.2f s, %.1f MB/s from %d peer%@.", result.name, Output.bytes(result.size),
                                       result.seconds, result.megabytesPerSecond, result.holders.count, result.holders.count == 1 ? "" : "s"))
                    for holder in result.holders {
                        Output.line("  \(holder.user): \(holder.chunks) chunks\(holder.failed.map { " (dropped: \($0))" } ?? "")")
                    }
                } catch {
                    Output.line("Error downloading the file: \(Self.explain(error))")
                }
            case "3":
                Output.line("")
                guard let name = input.prompt("Enter the filename to get peers that host it: ") else { return true }
                do {
                    let reports = try await HolderReport.make(name: name, session: peer.session)
                    if reports.count > 1 { Output.line("\(reports.count) different files are shared as \(name.debugDescription), oldest first:") }
                    for report in reports { report.print() }
                } catch {
                    Output.line("Error retrieving the details of the file: \(Self.explain(error))")
                }
            case "4":
                Output.line("")
                Output.line("Logging out...")
                return false
            case "5":
                return true
            default:
                Output.line("Invalid choice \(choice.debugDescription): enter a number from 1 to 5.")
            }
        }
    }

    /// Whether `name` is shared as several contents (the menu then asks which).
    static func ambiguity(peer: Peer, name: String) async -> DownloadError? {
        guard let details = try? await peer.session.details(name: name), details.files.count > 1 || details.moreContents != nil else { return nil }
        return .ambiguous(name: name, choices: details.files, more: details.moreContents)
    }

    static func explain(_ error: any Error) -> String {
        if case let NetError.wire(.remote(_, message)) = error { return message }
        if let error = error as? CLIError { return error.description }
        return "\(error)"
    }
}

/// Reads the menu's answers from standard input, one line at a time. On a
/// terminal the password is read without echo; from a pipe it is a line.
struct LineInput {
    private let interactive = isatty(0) != 0

    mutating func prompt(_ text: String) -> String? {
        FileHandle.standardOutput.write(Data(text.utf8))
        guard let line = Swift.readLine(strippingNewline: true) else {
            Output.line("")
            return nil
        }
        if !interactive { Output.line(line) }
        return line.trimmingCharacters(in: .whitespaces)
    }

    mutating func password(_ text: String) -> String? {
        if interactive { return PasswordInput.readHidden(prompt: text) }
        FileHandle.standardOutput.write(Data(text.utf8))
        guard let line = Swift.readLine(strippingNewline: true) else { return nil }
        Output.line("")
        return line
    }
}
