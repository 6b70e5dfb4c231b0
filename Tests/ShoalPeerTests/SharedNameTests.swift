import Foundation
import ShoalCore
import ShoalTestSupport
import Testing

/// Two different files shared under one name, as an attacker with free
/// accounts would to take over a popular name: nothing picks one for the
/// user by counting holders; `get` and the menu show both and ask.
@Suite("One name, several contents", .timeLimit(.minutes(3)))
struct SharedNameTests {
    @Test func getAndMenuAskWhichContent() async throws {
        let root = try TemporaryDirectory("shoal-names")
        defer { root.remove() }
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", root.file("t.sqlite"), "--password-rounds", "1000"])
        let port = try #require(try await tracker.waitForLine { _ in true }.flatMap(ShoalProcess.port(fromListeningLine:)))
        let address = "127.0.0.1:\(port)"
        let original = randomBytes(300_000, seed: 1)
        let impostor = randomBytes(200_000, seed: 2)
        // The original has one holder; the impostor has two (free accounts).
        let holdings: [(String, [UInt8])] = [("honest", original), ("fake1", impostor), ("fake2", impostor)]
        var seeders: [ShoalProcess] = []
        for (user, bytes) in holdings {
            try FileManager.default.createDirectory(atPath: root.file(user), withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: root.file("\(user)/popular.bin"), contents: Data(bytes))
            #expect(try await ShoalProcess(["register", "--user", user, "--tracker", address], environment: ["SHOAL_PASSWORD": "pw"]).waitForExit() == 0)
            let seeder = try ShoalProcess(["seed", "--user", user, "--dir", root.file(user), "--tracker", address, "--listen", "127.0.0.1:0"],
                                          environment: ["SHOAL_PASSWORD": "pw"])
            #expect(try await seeder.waitForLine { $0.hasPrefix("serving on") } != nil, "\(seeder.errors)")
            seeders.append(seeder)
        }
        #expect(try await ShoalProcess(["register", "--user", "d", "--tracker", address], environment: ["SHOAL_PASSWORD": "pw"]).waitForExit() == 0)
        let originalID = try sha256ContentID(original)

        // get by name alone: refused, with both contents described.
        try FileManager.default.createDirectory(atPath: root.file("d"), withIntermediateDirectories: true)
        let ambiguous = try ShoalProcess(["get", "popular.bin", "--user", "d", "--dir", root.file("d"), "--tracker", address, "--listen", "127.0.0.1:0"],
                                         environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await ambiguous.waitForExit() == 1)
        #expect(ambiguous.errors.contains("2 different files are shared as \"popular.bin\""), "\(ambiguous.errors)")
        #expect(ambiguous.errors.contains("--content"))
        #expect(ambiguous.errors.contains("first shared by honest"))
        #expect(ambiguous.errors.contains(String(originalID.prefix(16))))
        #expect(!FileManager.default.fileExists(atPath: root.file("d/popular.bin")))

        // --content with a prefix takes the one asked for, whatever its holder count.
        let chosen = try ShoalProcess(["get", "popular.bin", "--content", String(originalID.prefix(12)), "--user", "d", "--dir", root.file("d"),
                                       "--tracker", address, "--listen", "127.0.0.1:0"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await chosen.waitForExit() == 0, "\(chosen.errors)")
        #expect(FileManager.default.contents(atPath: root.file("d/popular.bin")).map { [UInt8]($0) } == original)
        let badID = try ShoalProcess(["get", "popular.bin", "--content", "xyz", "--user", "d", "--dir", root.file("d"),
                                      "--tracker", address, "--listen", "127.0.0.1:0"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await badID.waitForExit() == 1)
        #expect(badID.errors.contains("is not a content id"))

        // The menu lists both and asks; the second choice is the impostor's.
        try FileManager.default.createDirectory(atPath: root.file("m"), withIntermediateDirectories: true)
        let script = ["r", "menu", "pw", "2", "popular.bin", "7", "2", "popular.bin", "2", "3", "popular.bin", "5"].joined(separator: "\n") + "\n"
        let menu = try ShoalProcess(["peer", "--dir", root.file("m"), "--tracker", address, "--listen", "127.0.0.1:0"], stdin: script)
        #expect(try await menu.waitForExit() == 0, "\(menu.errors)")
        let out = menu.lines.joined(separator: "\n")
        for expected in ["2 different files are shared as \"popular.bin\":", "1. \(originalID.prefix(16))", "first shared by honest",
                         "Enter the number of the file to download (1-2):", "Invalid choice \"7\": nothing downloaded.",
                         "FILE DOWNLOADED: popular.bin", "2 different files are shared as \"popular.bin\", oldest first:"] {
            #expect(out.contains(expected), "the menu did not print \(expected.debugDescription)\n\(out)")
        }
        #expect(FileManager.default.contents(atPath: root.file("m/popular.bin")).map { [UInt8]($0) } == impostor)
        for seeder in seeders { #expect(try await seeder.stop() == 0) }
        #expect(try await tracker.stop() == 0)
    }

    /// The content id `shoal` gives a file of these bytes at its default chunk size.
    private func sha256ContentID(_ bytes: [UInt8]) throws -> String {
        let chunkSize = ChunkSizing.defaultChunkSize(forFileSize: UInt64(bytes.count))
        return try ManifestBuilder(parallelism: 1).build(fileSize: UInt64(bytes.count), chunkSize: chunkSize, reader: MemoryChunkReader(bytes)).contentID.hex
    }
}
