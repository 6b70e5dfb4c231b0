import ArgumentParser
import Foundation
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalWire

/// `shoal register --user U`.
struct RegisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "register", abstract: "Create an account on the tracker.")

    @OptionGroup var tracker: TrackerOptions
    @OptionGroup var account: UserOptions

    func run() async throws {
        let password = try PasswordInput.read()
        let taken = try await withClearErrors {
            try await TrackerSession.register(trackers: tracker.tracker, trust: tracker.trust, user: account.user, password: password)
        }
        Output.line("registered \(account.user) on \(taken)")
    }
}

/// `shoal list --user U [--json]`.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the files available from connected peers.")

    @OptionGroup var tracker: TrackerOptions
    @OptionGroup var account: UserOptions
    @Flag(help: "Print one JSON document: {\"files\": [{name, contentID, size, holders, partialHolders}]}.")
    var json = false

    func run() async throws {
        let password = try PasswordInput.read()
        let files = try await withSession(tracker, account.user, password) { try await $0.list() }
        if json {
            try Output.json(FileList(files: files))
            return
        }
        Output.line(files.isEmpty ? "No files are available." : "Available files:")
        for file in files {
            let partial = file.partialHolders > 0 ? " + \(file.partialHolders) partial" : ""
            Output.line("  \(file.name)  \(Output.bytes(file.size))  \(file.holders) holder\(file.holders == 1 ? "" : "s")\(partial)  \(file.contentID.short)")
        }
    }
}

/// `shoal details NAME --user U [--json]`.
struct DetailsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "details", abstract: "Show a file's holders with their score, response time, downloads and failures.")

    @Argument(help: "The file name.")
    var name: String
    @OptionGroup var tracker: TrackerOptions
    @OptionGroup var account: UserOptions
    @Option(help: "Only the content whose id starts with these hex digits (when several files share the name).")
    var content: String?
    @Flag(help: "Print one JSON document (see README: a holders array; an array of them when several contents share the name).")
    var json = false

    func run() async throws {
        let password = try PasswordInput.read()
        let reports = try await withSession(tracker, account.user, password) { try await HolderReport.make(name: name, content: content, session: $0) }
        if json {
            if reports.count == 1 { try Output.json(reports[0]) } else { try Output.json(reports) }
        } else {
            if reports.count > 1 { Output.line("\(reports.count) different files are shared as \(name.debugDescription), oldest first:") }
            for report in reports { report.print() }
        }
    }
}

/// Logs in without serving, runs `body`, logs out, whatever happens.
func withSession<T>(_ tracker: TrackerOptions, _ user: String, _ password: String, _ body: (TrackerSession) async throws -> T) async throws -> T {
    try await withClearErrors {
        let session = try await TrackerSession.login(trackers: tracker.tracker, trust: tracker.trust, user: user, password: password, servePort: 0, logger: .init(label: "shoal"))
        do {
            let result = try await body(session)
            await session.logout()
            return result
        } catch {
            await session.logout()
            throw error
        }
    }
}
