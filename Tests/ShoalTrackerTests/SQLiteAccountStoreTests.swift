import Foundation
import GRDB
import ShoalTestSupport
import ShoalTracker
import Testing

/// The account database never leaves integer range, and reads whatever an
/// older tracker may have left in it without trapping.
@Suite("SQLite account store")
struct SQLiteAccountStoreTests {
    private func report(_ holder: String, from reporter: String, content: String, bytes: UInt64, succeeded: Bool = true) -> ReportRecord {
        ReportRecord(reporter: reporter, holder: holder, contentID: content, succeeded: succeeded, bytes: bytes, at: Date().timeIntervalSince1970)
    }

    /// Bytes served saturate at 2^63 − 1 in the SQL, stay INTEGER, and read back.
    @Test func countersSaturate() throws {
        let directory = try TemporaryDirectory("shoal-store")
        defer { directory.remove() }
        let path = directory.file("db.sqlite")
        let store = try SQLiteAccountStore(path: path)
        try store.create(Account(user: "bob", passwordHash: "pbkdf2-sha256$1$c2FsdA==$aGFzaA=="))
        let first = try store.recordReport(report("bob", from: "a", content: "c1", bytes: .max), rule: ReputationRule())
        #expect(first?.bytesServed == UInt64(Int64.max) && first?.countDownloads == 1)
        let second = try store.recordReport(report("bob", from: "a", content: "c2", bytes: .max), rule: ReputationRule())
        #expect(second?.bytesServed == UInt64(Int64.max) && second?.countDownloads == 2)
        #expect(try store.account(named: "bob")?.bytesServed == UInt64(Int64.max))
        #expect(try store.allCounters().map(\.user) == ["bob"])
        // Once per (reporter, holder, content).
        #expect(throws: TrackerError.self) { try store.recordReport(report("bob", from: "a", content: "c2", bytes: 1), rule: ReputationRule()) }
        store.close()
        let queue = try DatabaseQueue(path: path)
        #expect(try queue.read { try String.fetchOne($0, sql: "SELECT typeof(bytes_served) FROM account") } == "integer")
        try queue.close()
    }

    /// A REAL, text or negative counter left by an older tracker is repaired
    /// when the database opens, and reads as the nearest value in range.
    @Test func outOfRangeValuesAreRepaired() throws {
        let directory = try TemporaryDirectory("shoal-store")
        defer { directory.remove() }
        let path = directory.file("db.sqlite")
        let store = try SQLiteAccountStore(path: path)
        try store.create(Account(user: "bob", passwordHash: "pbkdf2-sha256$1$c2FsdA==$aGFzaA=="))
        try store.create(Account(user: "carol", passwordHash: "pbkdf2-sha256$1$c2FsdA==$aGFzaA=="))
        store.close()
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in
            try db.execute(sql: "UPDATE account SET bytes_served = 1.8446744073709552e19, count_downloads = 'many', count_failures = -5 WHERE user = 'bob'")
            try db.execute(sql: "UPDATE account SET bytes_served = 123.0 WHERE user = 'carol'")
        }
        try queue.close()

        let reopened = try SQLiteAccountStore(path: path)
        let bob = try #require(try reopened.account(named: "bob"))
        #expect(bob.bytesServed == UInt64(Int64.max) && bob.countDownloads == 0 && bob.countFailures == 0)
        #expect(try reopened.account(named: "carol")?.bytesServed == 123)
        // It goes on counting from there without leaving range.
        let after = try reopened.recordReport(report("bob", from: "a", content: "c", bytes: 1_000), rule: ReputationRule())
        #expect(after?.bytesServed == UInt64(Int64.max) && after?.countDownloads == 1)
        #expect(!"\(bob)".contains("pbkdf2"), "an account prints without its password hash")
        reopened.close()
    }
}
