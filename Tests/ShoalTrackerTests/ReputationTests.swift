import Foundation
import ShoalCore
import ShoalNet
import ShoalTestSupport
import ShoalTracker
import ShoalWire
import Testing

/// Reports need evidence (a download id bound to the account, the content
/// and the holders listed), count once per (reporter, holder, content) ever,
/// never about oneself, and weigh little from accounts without a record: free
/// accounts working together cannot move an honest holder.
@Suite("Reputation", .timeLimit(.minutes(2)))
struct ReputationTests {
    /// A report and the refusal code it gets ("ok" when accepted).
    private func report(_ connection: FramedConnection, _ token: String, _ content: ContentID, about holder: String,
                        _ outcome: Report.Outcome = .failure, bytes: UInt64 = 0, id: String?) async -> String {
        await refusalCode {
            _ = try await connection.request(.report(Report(token: token, contentID: content, holder: holder, outcome: outcome, bytes: bytes, downloadID: id)))
        } ?? "ok"
    }

    private func downloadID(_ connection: FramedConnection, _ token: String, _ content: ContentID) async throws -> String {
        try #require(try await connection.details(token, contentID: content).first?.downloadID)
    }

    /// The score a downloader gives a holder from the tracker's counters (PeerScore, 10 ms round trip, 256 KiB chunks).
    private func score(_ holder: Holder) -> Double {
        PeerScore(responseTime: 0.01, countDownloads: holder.countDownloads, countFailures: holder.countFailures).value(chunkSize: 256 * 1024)
    }

    /// One honest holder with an honest record; 5 fresh accounts work
    /// together against it with every trick: reports without details, made-up
    /// and borrowed download ids, repeated reports, fresh details, second
    /// sessions, every content it shares, vouching for each other, self
    /// reports, and all of it again after a tracker restart. Its score stays
    /// within 10 % of its honest value (it does not move at all).
    @Test(arguments: TestStore.allCases) func fiveColludingAccountsCannotMoveAnHonestHolder(store: TestStore) async throws {
        let directory = try TemporaryDirectory("shoal-reputation")
        var tracker = try await TestTracker.start(directory: directory, store: store)
        let honest = try await tracker.connect()
        let honestToken = try await honest.signUp("honest", port: 7001)
        let contents = [sampleManifest(1), sampleManifest(2), sampleManifest(3)]
        try await honest.announce(honestToken, contents.enumerated().map { ("file\($0.offset).bin", $0.element) })

        // Its honest record: ten downloaders it served well.
        for i in 0..<10 {
            let downloader = try await tracker.connect()
            let token = try await downloader.signUp("downloader\(i)", port: 0)
            let id = try await downloadID(downloader, token, contents[0].contentID)
            #expect(await report(downloader, token, contents[0].contentID, about: "honest", .success, bytes: 40_000, id: id) == "ok")
            downloader.close()
        }
        let observer = try await tracker.connect()
        let observerToken = try await observer.signUp("observer", port: 0)
        let before = try #require(try await observer.details(observerToken, contentID: contents[0].contentID).first?.holders.first)
        #expect(before.countDownloads == 10 && before.countFailures == 0)
        let honestScore = score(before)

        // Five fresh accounts, each also sharing a file of its own.
        var colluders: [(name: String, connection: FramedConnection, token: String, seeding: FramedConnection, own: Manifest)] = []
        for i in 0..<5 {
            let name = "mallory\(i)"
            let seeding = try await tracker.connect()
            let seedToken = try await seeding.signUp(name, port: 7100 + i)
            let own = sampleManifest(UInt8(100 + i))
            try await seeding.announce(seedToken, [("own\(i).bin", own)])
            let connection = try await tracker.connect()
            let token = try await connection.login(name, "secret-of-\(name)", port: 0)
            colluders.append((name, connection, token, seeding, own))
        }
        var accepted = 0
        for (index, c) in colluders.enumerated() {
            let target = contents[0].contentID
            // Without details, with made-up ids, with another account's id: refused.
            #expect(await report(c.connection, c.token, target, about: "honest", id: nil) == "not_allowed")
            #expect(await report(c.connection, c.token, target, about: "honest", id: String(repeating: "ab", count: 32)) == "not_allowed")
            let other = colluders[(index + 1) % colluders.count]
            let borrowed = try await downloadID(other.connection, other.token, target)
            #expect(await report(c.connection, c.token, target, about: "honest", id: borrowed) == "not_allowed")
            // An id for one content does not cover another.
            let id = try await downloadID(c.connection, c.token, target)
            #expect(await report(c.connection, c.token, contents[1].contentID, about: "honest", id: id) == "not_allowed")
            // A byte count over the file's size is refused.
            #expect(await report(c.connection, c.token, target, about: "honest", .success, bytes: 40_001, id: id) == "bad_request")
            // One failure per content is taken...
            for content in contents {
                let id = try await downloadID(c.connection, c.token, content.contentID)
                if await report(c.connection, c.token, content.contentID, about: "honest", id: id) == "ok" { accepted += 1 }
                // ...and only one: again with the same id, with a fresh one, from a second session.
                #expect(await report(c.connection, c.token, content.contentID, about: "honest", id: id) == "not_allowed")
                let fresh = try await downloadID(c.connection, c.token, content.contentID)
                #expect(await report(c.connection, c.token, content.contentID, about: "honest", id: fresh) == "not_allowed")
                let second = try await tracker.connect()
                let secondToken = try await second.login(c.name, "secret-of-\(c.name)", port: 0)
                let secondID = try await downloadID(second, secondToken, content.contentID)
                #expect(await report(second, secondToken, content.contentID, about: "honest", id: secondID) == "not_allowed")
                second.close()
            }
            // It is never listed as a holder of its own file, so it cannot vouch for itself.
            let own = try #require(try await c.connection.details(c.token, contentID: c.own.contentID).first)
            #expect(!own.holders.contains { $0.user == c.name })
            #expect(await report(c.connection, c.token, c.own.contentID, about: c.name, .success, bytes: 40_000, id: own.downloadID) == "not_allowed")
            // The others vouch for it.
            for voucher in colluders where voucher.name != c.name {
                let id = try await downloadID(voucher.connection, voucher.token, c.own.contentID)
                #expect(await report(voucher.connection, voucher.token, c.own.contentID, about: c.name, .success, bytes: 40_000, id: id) == "ok")
            }
        }
        #expect(accepted == 15, "each colluder's first failure per content is stored")

        // A restart: the reports made are remembered, the grants are not.
        for c in colluders {
            c.connection.close()
            c.seeding.close()
        }
        honest.close()
        observer.close()
        await tracker.stop()
        tracker = try await TestTracker.start(directory: directory, store: store)
        let honestAgain = try await tracker.connect()
        let again = try await honestAgain.login("honest", "secret-of-honest", port: 7001)
        try await honestAgain.announce(again, contents.enumerated().map { ("file\($0.offset).bin", $0.element) })
        for c in colluders {
            let connection = try await tracker.connect()
            let token = try await connection.login(c.name, "secret-of-\(c.name)", port: 0)
            for content in contents {
                let id = try await downloadID(connection, token, content.contentID)
                #expect(await report(connection, token, content.contentID, about: "honest", id: id) == "not_allowed")
            }
            connection.close()
        }
        let viewer = try await tracker.connect()
        let viewerToken = try await viewer.signUp("viewer", port: 0)
        let after = try #require(try await viewer.details(viewerToken, contentID: contents[0].contentID).first?.holders.first)
        let attackedScore = score(after)
        #expect(after.countDownloads == 10)
        #expect(abs(attackedScore - honestScore) <= 0.10 * honestScore,
                "score \(attackedScore) against honest \(honestScore) (downloads \(after.countDownloads), failures \(after.countFailures))")
        honestAgain.close()
        viewer.close()
        await tracker.stopAndRemove()
    }

    /// Failures do count from a reporter with a record (old enough, vouched
    /// for by others' success reports), once per holder whatever the number
    /// of contents; without a record, every 8th distinct complainant adds one.
    @Test(arguments: TestStore.allCases) func failuresFromReportersWithARecordCount(store: TestStore) async throws {
        let tracker = try await TestTracker.start(store: store) { $0.reputation = ReputationRule(minimumRecordAge: 0, minimumVouchers: 3, newcomerFailuresPerCount: 8) }
        let bad = try await tracker.connect()
        let badToken = try await bad.signUp("bad", port: 7001)
        let contents = [sampleManifest(7), sampleManifest(8)]
        try await bad.announce(badToken, contents.enumerated().map { ("f\($0.offset)", $0.element) })
        // A reporter with a record: three others downloaded from it.
        let judge = try await tracker.connect()
        let judgeToken = try await judge.signUp("judge", port: 7002)
        let judgeFile = sampleManifest(9)
        try await judge.announce(judgeToken, [("judge.bin", judgeFile)])
        for i in 0..<3 {
            let voucher = try await tracker.connect()
            let token = try await voucher.signUp("voucher\(i)", port: 0)
            let id = try await downloadID(voucher, token, judgeFile.contentID)
            #expect(await report(voucher, token, judgeFile.contentID, about: "judge", .success, bytes: 40_000, id: id) == "ok")
            voucher.close()
        }
        for content in contents {
            let id = try await downloadID(judge, judgeToken, content.contentID)
            #expect(await report(judge, judgeToken, content.contentID, about: "bad", id: id) == "ok")
        }
        let observer = try await tracker.connect()
        let observerToken = try await observer.signUp("observer", port: 0)
        #expect(try await observer.details(observerToken, contentID: contents[0].contentID).first?.holders.first?.countFailures == 1,
                "one failure from a reporter with a record, counted once for two contents")
        // Newcomers: the 8th distinct complainant adds one.
        for i in 0..<8 {
            let newcomer = try await tracker.connect()
            let token = try await newcomer.signUp("newcomer\(i)", port: 0)
            let id = try await downloadID(newcomer, token, contents[0].contentID)
            #expect(await report(newcomer, token, contents[0].contentID, about: "bad", id: id) == "ok")
            let failures = try await observer.details(observerToken, contentID: contents[0].contentID).first?.holders.first?.countFailures
            #expect(failures == (i == 7 ? 2 : 1), "after \(i + 1) newcomers")
            newcomer.close()
        }
        bad.close()
        judge.close()
        observer.close()
        await tracker.stopAndRemove()
    }
}
