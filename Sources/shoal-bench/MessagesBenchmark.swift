import ArgumentParser
import Foundation
import ShoalCore
import ShoalTracker
import ShoalWire

/// What the tracker spends on one request's messages, without the network:
/// decoding an `announce`, taking it into a registry of `--files` files,
/// building a `details` reply and encoding it, encoding a `list` page. The
/// same messages as `shoal-bench tracker` sends (64-chunk manifests).
struct MessagesBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "messages",
        abstract: "CPU time per tracker message (decode, registry, encode), in microseconds."
    )

    @Option(help: "Files (and peers) in the registry.")
    var files = 500

    @Option(help: "Repetitions of each measurement.")
    var repeats = 2000

    func run() throws {
        var registry = TrackerRegistry()
        let tokens = (0..<files).map { SessionToken(value: "token-\($0)") }
        let manifests = (0..<files).map { TrackerBenchmark.manifest(seed: $0) }
        for (index, token) in tokens.enumerated() {
            _ = try registry.login(token: token, peer: TrackerRegistry.Peer(user: "bench\(index)", host: "127.0.0.1", port: 20_000 + index,
                                                                            connection: UInt64(index), countDownloads: 0, countFailures: 0, bytesServed: 0))
        }
        let announces = (0..<files).map { index in
            Announce(token: tokens[index].value, replace: true,
                     files: [AnnouncedFile(name: "file-\(index).bin", contentID: manifests[index].contentID, manifest: ManifestPayload(manifests[index]))])
        }
        let frames = try announces.map { try $0.frame(requestID: 1) }
        say("\(files) files of 64 chunks, \(repeats) repetitions; µs per operation (CPU of one thread)")
        say(String(format: "announce frame: %d bytes", frames[0].payload.readableBytes))

        measure("decode an announce frame (JSON)") { i in
            _ = try! Message(frame: frames[i % files])
        }
        measure("parse it (names, manifest against its id)") { i in
            _ = try! Announcement(announces[i % files])
        }
        let parsed = try announces.map { try Announcement($0) }
        measure("take it into the registry") { i in
            _ = try! registry.announce(tokens[i % files], parsed[i % files], now: 0)
        }
        let touched = TrackerRegistry.Touched(contents: [manifests[0].contentID], names: [try FileName("file-0.bin")])
        measure("list rows an announce touched") { _ in
            _ = registry.listRows(touching: touched)
        }
        measure("details: the registry's view of one file") { i in
            _ = try! registry.details(tokens[(i + 1) % files], name: "file-\(i % files).bin", contentID: nil)
        }
        let views = try (0..<files).map { try registry.details(tokens[($0 + 1) % files], name: "file-\($0).bin", contentID: nil) }
        measure("details: the reply's message (manifest in base64)") { i in
            _ = FileDetails(views[i % files])
        }
        let replies = views.map(FileDetails.init)
        measure("details: encoding the reply (JSON, by hand)") { i in
            _ = replies[i % files].files.map { $0.encodedAroundDownloadID() }
        }
        measure("details: encoding the reply (JSONEncoder)") { i in
            _ = try! replies[i % files].frame(requestID: 1)
        }
        let rows = registry.list()
        let page = Array(rows.prefix(128))
        measure("list: encoding a page of \(page.count) rows (JSON)", repeats: max(1, repeats / 10)) { _ in
            _ = try! FileList(files: page, next: ListCursor(name: page.last!.name, contentID: page.last!.contentID)).frame(requestID: 1)
        }
    }

    func measure(_ label: String, repeats: Int? = nil, _ body: (Int) -> Void) {
        let count = repeats ?? self.repeats
        for i in 0..<min(count, 50) { body(i) }
        let start = ProcessInfoLite.cpuSeconds
        for i in 0..<count { body(i) }
        let seconds = ProcessInfoLite.cpuSeconds - start
        say(label.padding(toLength: 56, withPad: " ", startingAt: 0) + String(format: "%8.1f", seconds / Double(count) * 1e6))
    }

    func say(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
}
