import Foundation
import ShoalCore
import ShoalTestSupport
import Testing

/// The `shoal` command line as a user runs it: separate processes on loopback.
@Suite("shoal command line", .timeLimit(.minutes(3)))
struct CommandLineTests {
    /// The menu, driven through its standard input from registration to exit.
    @Test func menuFromRegistrationToExit() async throws {
        let root = try TemporaryDirectory("shoal-menu")
        defer { root.remove() }
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", root.file("t.sqlite"), "--password-rounds", "1000"])
        let port = try #require(try await tracker.waitForLine { _ in true }.flatMap(ShoalProcess.port(fromListeningLine:)))
        let address = "127.0.0.1:\(port)"
        for dir in ["a", "b"] { try FileManager.default.createDirectory(atPath: root.file(dir), withIntermediateDirectories: true) }
        let notes = Fixtures.bytes("peer_1/notes.txt")
        FileManager.default.createFile(atPath: root.file("a/notes.txt"), contents: Data(notes))

        let environment = ["SHOAL_PASSWORD": "pw-maria"]
        let register = try ShoalProcess(["register", "--user", "maria", "--tracker", address], environment: environment)
        #expect(try await register.waitForExit() == 0)
        let seeder = try ShoalProcess(["seed", "--user", "maria", "--dir", root.file("a"), "--tracker", address, "--listen", "127.0.0.1:0"], environment: environment)
        #expect(try await seeder.waitForLine { $0.hasPrefix("serving on") } != nil, "\(seeder.errors)")

        let script = ["x", "r", "nikos", "pw-nikos", "1", "3", "notes.txt", "2", "notes.txt", "2", "missing.txt", "9", "4",
                      "l", "nikos", "wrong", "l", "nikos", "pw-nikos", "5"].joined(separator: "\n") + "\n"
        let menu = try ShoalProcess(["peer", "--dir", root.file("b"), "--tracker", address, "--listen", "127.0.0.1:0"], stdin: script)
        #expect(try await menu.waitForExit() == 0, "\(menu.errors)")
        let out = menu.lines.joined(separator: "\n")
        for expected in [
            "WELCOME TO THE PEER-TO-PEER FILE SHARING SYSTEM !",
            "Please enter R or L.",
            "Registration successful",
            "Peer Menu:", "1. List available files", "2. Download a file", "3. File details", "4. Logout", "5. Exit",
            "Enter your choice (1-5):",
            "Available files:", "notes.txt",
            "maria", "127.0.0.1:",
            "FILE DOWNLOADED: notes.txt",
            "Error downloading the file: no connected peer shares a file named \"missing.txt\"",
            "Invalid choice \"9\"",
            "Logged out successfully.",
            "Login failed: wrong user name or password",
            "Logged out. Goodbye.",
        ] {
            #expect(out.contains(expected), "the menu did not print \(expected.debugDescription)")
        }
        #expect(FileManager.default.contents(atPath: root.file("b/notes.txt")).map { [UInt8]($0) } == notes)
        #expect(try await seeder.stop() == 0)
        #expect(try await tracker.stop() == 0)
    }

    /// Headless: seed, list, details and get with --json; a bad name fails clearly; a missing password is refused.
    @Test func headlessCommands() async throws {
        let root = try TemporaryDirectory("shoal-headless")
        defer { root.remove() }
        let tracker = try ShoalProcess(["tracker", "--port", "0", "--db", root.file("t.sqlite"), "--password-rounds", "1000"])
        let port = try #require(try await tracker.waitForLine { _ in true }.flatMap(ShoalProcess.port(fromListeningLine:)))
        let address = "127.0.0.1:\(port)"
        for dir in ["a", "b"] { try FileManager.default.createDirectory(atPath: root.file(dir), withIntermediateDirectories: true) }
        let data = Fixtures.bytes("peer_2/data.bin")
        FileManager.default.createFile(atPath: root.file("a/data set.bin"), contents: Data(data))
        for user in ["s", "d"] {
            #expect(try await ShoalProcess(["register", "--user", user, "--tracker", address], environment: ["SHOAL_PASSWORD": "pw"]).waitForExit() == 0)
        }
        let seeder = try ShoalProcess(["seed", "--user", "s", "--dir", root.file("a"), "--tracker", address, "--listen", "127.0.0.1:0"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await seeder.waitForLine { $0.hasPrefix("serving on") } != nil)

        let list = try ShoalProcess(["list", "--user", "d", "--tracker", address, "--json"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await list.waitForExit() == 0)
        let listed = try JSONSerialization.jsonObject(with: Data(list.lines.joined().utf8)) as? [String: Any]
        #expect((listed?["files"] as? [[String: Any]])?.first?["name"] as? String == "data set.bin")

        let details = try ShoalProcess(["details", "data set.bin", "--user", "d", "--tracker", address, "--json"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await details.waitForExit() == 0)
        let detail = try JSONSerialization.jsonObject(with: Data(details.lines.joined().utf8)) as? [String: Any]
        let holders = detail?["holders"] as? [[String: Any]]
        #expect(holders?.first?["user"] as? String == "s")
        #expect(holders?.first?["responseTimeMs"] is Double)

        let get = try ShoalProcess(["get", "data set.bin", "--user", "d", "--dir", root.file("b"), "--tracker", address, "--listen", "127.0.0.1:0", "--json", "--sha256"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await get.waitForExit() == 0, "\(get.errors)")
        let result = try JSONSerialization.jsonObject(with: Data(get.lines.joined().utf8)) as? [String: Any]
        #expect(result?["sha256"] as? String == ChunkDigest(hashing: data).hex)
        #expect(FileManager.default.contents(atPath: root.file("b/data set.bin")).map { [UInt8]($0) } == data)

        let bad = try ShoalProcess(["get", "../escape", "--user", "d", "--dir", root.file("b"), "--tracker", address, "--listen", "127.0.0.1:0"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await bad.waitForExit() == 1)
        #expect(bad.errors.contains("cannot download \"../escape\""))
        let noPassword = try ShoalProcess(["list", "--user", "d", "--tracker", address], environment: ["SHOAL_PASSWORD": ""])
        #expect(try await noPassword.waitForExit() != 0)
        #expect(noPassword.errors.contains("SHOAL_PASSWORD"))
        #expect(try await seeder.stop(signal: SIGINT) == 0)
        #expect(seeder.errors.contains("logging out"))
        #expect(try await tracker.stop() == 0)
    }

    /// IPv6 end to end: a tracker on [::1], a seeder that listens on [::1]
    /// and one that advertises itself there, a download over both; bad
    /// addresses are refused before anything starts.
    @Test func ipv6AndAdvertisedAddresses() async throws {
        let root = try TemporaryDirectory("shoal-ipv6")
        defer { root.remove() }
        let tracker = try ShoalProcess(["tracker", "--host", "::1", "--port", "0", "--db", root.file("t.sqlite"), "--password-rounds", "1000"])
        let line = try #require(try await tracker.waitForLine { _ in true })
        #expect(line.hasPrefix("listening on [::1]:"))
        let port = try #require(ShoalProcess.port(fromListeningLine: line))
        let address = "[::1]:\(port)"
        for dir in ["a", "b", "c"] { try FileManager.default.createDirectory(atPath: root.file(dir), withIntermediateDirectories: true) }
        let data = randomBytes(3 << 20, seed: 6)
        for dir in ["a", "b"] { FileManager.default.createFile(atPath: root.file("\(dir)/six.bin"), contents: Data(data)) }
        for user in ["s1", "s2", "d"] {
            #expect(try await ShoalProcess(["register", "--user", user, "--tracker", address], environment: ["SHOAL_PASSWORD": "pw"]).waitForExit() == 0)
        }
        let first = try ShoalProcess(["seed", "--user", "s1", "--dir", root.file("a"), "--tracker", address, "--listen", "[::1]:0"], environment: ["SHOAL_PASSWORD": "pw"])
        let serving = try #require(try await first.waitForLine { $0.hasPrefix("serving on") })
        #expect(serving.hasPrefix("serving on [::1]:"))
        // The second listens on a loopback port of its own and advertises it by hand, as behind port forwarding.
        let second = try ShoalProcess(["seed", "--user", "s2", "--dir", root.file("b"), "--tracker", address, "--listen", "127.0.0.1:0",
                                       "--advertise", "[::1]:1"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await second.waitForLine { $0.hasPrefix("serving on") } != nil)

        let details = try ShoalProcess(["details", "six.bin", "--user", "d", "--tracker", address, "--json"], environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await details.waitForExit() == 0)
        let detail = try JSONSerialization.jsonObject(with: Data(details.lines.joined().utf8)) as? [String: Any]
        let holders = (detail?["holders"] as? [[String: Any]] ?? []).sorted { ($0["user"] as? String ?? "") < ($1["user"] as? String ?? "") }
        #expect(holders.map { $0["host"] as? String } == ["::1", "::1"])
        #expect(holders.last?["port"] as? Int == 1)

        // s2 is advertised where nothing answers: the download comes from s1, and s2 is reported.
        let get = try ShoalProcess(["get", "six.bin", "--user", "d", "--dir", root.file("c"), "--tracker", address, "--listen", "[::1]:0", "--json"],
                                   environment: ["SHOAL_PASSWORD": "pw"])
        #expect(try await get.waitForExit() == 0, "\(get.errors)")
        #expect(FileManager.default.contents(atPath: root.file("c/six.bin")).map { [UInt8]($0) } == data)

        for (flag, value, message) in [("--listen", "[::1", "--listen [::1"), ("--listen", "99999", "not a TCP port"), ("--advertise", "0.0.0.0:0", "not a TCP port"),
                                       ("--advertise", "bad host", "neither an IPv4 address")] {
            let refused = try ShoalProcess(["seed", "--user", "s1", "--dir", root.file("a"), "--tracker", address, flag, value], environment: ["SHOAL_PASSWORD": "pw"])
            #expect(try await refused.waitForExit() != 0)
            #expect(refused.errors.contains(message), "\(flag) \(value): \(refused.errors)")
        }
        #expect(try await first.stop(signal: SIGINT) == 0)
        #expect(try await second.stop(signal: SIGINT) == 0)
        #expect(try await tracker.stop() == 0)
    }

    /// `shoal demo` runs with no setup and verifies its download.
    @Test func demo() async throws {
        let demo = try ShoalProcess(["demo", "--size-mib", "8"])
        #expect(try await demo.waitForExit(timeout: 120) == 0, "\(demo.errors)")
        let out = demo.lines.joined(separator: "\n")
        #expect(out.contains("Verified: the copy's SHA-256 equals the original's"))
        #expect(out.contains("Compression saved"))
        #expect(out.contains("seeder1") && out.contains("seeder2") && out.contains("seeder3"))
    }
}
