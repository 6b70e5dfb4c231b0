import Foundation
import GRDB

/// Accounts in an embedded SQLite database (WAL mode), through GRDB: the
/// synchronous layer under ``SQLiteTrackerStore``, which runs it off the
/// caller's thread.
///
/// Schema (migrations `v1`, `v2`):
/// ```sql
/// CREATE TABLE account (
///   user TEXT PRIMARY KEY NOT NULL,      -- unique, exact
///   password_hash TEXT NOT NULL,         -- pbkdf2-sha256$rounds$salt$hash
///   count_downloads INTEGER NOT NULL DEFAULT 0,
///   count_failures INTEGER NOT NULL DEFAULT 0,
///   bytes_served INTEGER NOT NULL DEFAULT 0,
///   created_at TEXT NOT NULL             -- ISO 8601, UTC
/// )
/// CREATE TABLE report (                  -- v2: one row per accepted report
///   reporter TEXT NOT NULL, holder TEXT NOT NULL, content TEXT NOT NULL,
///   outcome TEXT NOT NULL,               -- 'success' or 'failure'
///   bytes INTEGER NOT NULL,
///   standing INTEGER NOT NULL,           -- 1: the reporter had a record then
///   reported_at REAL NOT NULL,           -- Unix seconds
///   PRIMARY KEY (reporter, holder, content)
/// )
/// ```
///
/// Counters only grow, and saturate at 2^63 − 1 inside the SQL, so a column
/// never leaves SQLite's integer range (where it would turn into a REAL).
/// Reading never traps on a stored value of the wrong type: it is read as a
/// ``DatabaseValue`` and clamped, and opening the database repairs such
/// values (a database written by an older tracker may hold them). Rows are
/// never logged, and queries for counters never select the password hash.
public final class SQLiteAccountStore: Sendable {
    private let queue: DatabaseQueue
    /// The database file.
    public let path: String

    /// The largest value a counter column holds.
    static let maximum = Int64.max

    /// Opens (creating if needed) the database at `path`, migrates it and repairs out-of-range counters.
    public init(path: String) throws(TrackerError) {
        self.path = path
        do {
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            queue = try DatabaseQueue(path: path, configuration: configuration)
            // WAL with synchronous = NORMAL: a commit is appended to the log
            // without an fsync, which waits at checkpoints only. The tracker
            // killed outright loses nothing (the log is in the kernel's
            // hands); a power cut may lose the last commits, never the
            // database's consistency. With FULL, every report waited for an
            // fsync, which on a disk busy with a peer's download took 100 ms.
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            try Self.migrator.migrate(queue)
            try queue.write { db in try Self.repairCounters(db) }
        } catch {
            throw .storage("cannot open the database \(path): \(error)")
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "account") { t in
                t.primaryKey("user", .text).notNull()
                t.column("password_hash", .text).notNull()
                t.column("count_downloads", .integer).notNull().defaults(to: 0)
                t.column("count_failures", .integer).notNull().defaults(to: 0)
                t.column("bytes_served", .integer).notNull().defaults(to: 0)
                t.column("created_at", .text).notNull()
            }
        }
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
                CREATE TABLE report (
                  reporter TEXT NOT NULL, holder TEXT NOT NULL, content TEXT NOT NULL,
                  outcome TEXT NOT NULL, bytes INTEGER NOT NULL, standing INTEGER NOT NULL,
                  reported_at REAL NOT NULL,
                  PRIMARY KEY (reporter, holder, content))
                """)
            try db.execute(sql: "CREATE INDEX report_by_holder ON report (holder, outcome)")
        }
        return migrator
    }

    /// Puts every counter back in range: a value stored as REAL (an overflow
    /// in an older tracker), text, a blob, NULL or a negative number becomes
    /// the nearest integer in 0 ... 2^63 − 1.
    static func repairCounters(_ db: Database) throws {
        for column in ["count_downloads", "count_failures", "bytes_served"] {
            try db.execute(sql: """
                UPDATE account SET \(column) = CASE
                  WHEN typeof(\(column)) = 'real' AND \(column) >= 9223372036854775807.0 THEN 9223372036854775807
                  WHEN typeof(\(column)) = 'real' AND \(column) > 0 THEN CAST(\(column) AS INTEGER)
                  ELSE 0 END
                WHERE typeof(\(column)) != 'integer' OR \(column) < 0
                """)
        }
    }

    public func create(_ account: Account) throws(TrackerError) {
        do {
            try queue.write { db in
                try db.execute(
                    // The time from SQLite itself: a Foundation ISO8601DateFormatter is made
                    // through ICU each time, a tenth of a registration's CPU at low hash costs.
                    sql: """
                        INSERT INTO account (user, password_hash, count_downloads, count_failures, bytes_served, created_at)
                        VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
                        """,
                    arguments: [account.user, account.passwordHash, max(0, account.countDownloads), max(0, account.countFailures),
                                Int64(clamping: account.bytesServed)])
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
            throw .nameTaken(account.user)
        } catch {
            throw .storage(Self.describe(error))
        }
    }

    public func account(named user: String) throws(TrackerError) -> Account? {
        do {
            return try queue.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM account WHERE user = ?", arguments: [user]).map(Self.account(from:))
            }
        } catch {
            throw .storage(Self.describe(error))
        }
    }

    public func recordReport(_ report: ReportRecord, rule: ReputationRule) throws(TrackerError) -> AccountCounters? {
        do {
            return try queue.write { db -> AccountCounters? in
                guard try Self.counters(db, report.holder) != nil else { return nil }
                let standing = try Self.hasRecord(db, report.reporter, rule: rule, now: report.at)
                let firstFailure = report.succeeded ? false : try Int.fetchOne(db, sql: """
                    SELECT COUNT(*) FROM report WHERE reporter = ? AND holder = ? AND outcome = 'failure'
                    """, arguments: [report.reporter, report.holder]) == 0
                try db.execute(sql: """
                    INSERT OR IGNORE INTO report (reporter, holder, content, outcome, bytes, standing, reported_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [report.reporter, report.holder, report.contentID, report.succeeded ? "success" : "failure",
                                     Int64(clamping: report.bytes), standing ? 1 : 0, report.at])
                guard db.changesCount == 1 else {
                    throw TrackerError.notAllowed("\(report.reporter) has reported about \(report.holder) for this content already; an account reports once per holder and content")
                }
                if report.succeeded {
                    try db.execute(sql: """
                        UPDATE account SET
                          count_downloads = CASE WHEN count_downloads >= 9223372036854775807 THEN 9223372036854775807 ELSE count_downloads + 1 END,
                          bytes_served = CASE WHEN bytes_served > 9223372036854775807 - ?1 THEN 9223372036854775807 ELSE bytes_served + ?1 END
                        WHERE user = ?2
                        """, arguments: [Int64(clamping: report.bytes), report.holder])
                } else if firstFailure {
                    var counts = standing
                    if !standing {
                        let newcomers = try Int.fetchOne(db, sql: """
                            SELECT COUNT(DISTINCT reporter) FROM report WHERE holder = ? AND outcome = 'failure' AND standing = 0
                            """, arguments: [report.holder]) ?? 0
                        counts = newcomers % rule.newcomerFailuresPerCount == 0
                    }
                    if counts {
                        try db.execute(sql: """
                            UPDATE account SET count_failures = CASE WHEN count_failures >= 9223372036854775807 THEN 9223372036854775807 ELSE count_failures + 1 END
                            WHERE user = ?
                            """, arguments: [report.holder])
                    }
                }
                return try Self.counters(db, report.holder)
            }
        } catch let error as TrackerError {
            throw error
        } catch {
            throw .storage(Self.describe(error))
        }
    }

    public func count() throws(TrackerError) -> Int {
        do {
            return try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM account") ?? 0 }
        } catch {
            throw .storage(Self.describe(error))
        }
    }

    public func allCounters() throws(TrackerError) -> [AccountCounters] {
        do {
            return try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT user, count_downloads, count_failures, bytes_served FROM account ORDER BY user").map(Self.counters(from:))
            }
        } catch {
            throw .storage(Self.describe(error))
        }
    }

    public func counters(after: String?, limit: Int) throws(TrackerError) -> [AccountCounters] {
        do {
            return try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT user, count_downloads, count_failures, bytes_served FROM account WHERE user > ? ORDER BY user LIMIT ?",
                                 arguments: [after ?? "", max(0, limit)]).map(Self.counters(from:))
            }
        } catch {
            throw .storage(Self.describe(error))
        }
    }

    /// Closes the database.
    public func close() {
        try? queue.close()
    }

    // MARK: - Reading rows

    /// Whether `user` has a record of its own at `now`: old enough, and
    /// vouched for by enough other accounts' success reports.
    private static func hasRecord(_ db: Database, _ user: String, rule: ReputationRule, now: Double) throws -> Bool {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT CAST(strftime('%s', created_at) AS INTEGER) AS created,
                   (SELECT COUNT(DISTINCT reporter) FROM report WHERE holder = account.user AND outcome = 'success' AND reporter != account.user) AS vouchers
            FROM account WHERE user = ?
            """, arguments: [user]) else { return false }
        let created = Double(integer(row, "created"))
        return now - created >= rule.minimumRecordAge && integer(row, "vouchers") >= Int64(rule.minimumVouchers)
    }

    private static func counters(_ db: Database, _ user: String) throws -> AccountCounters? {
        try Row.fetchOne(db, sql: "SELECT user, count_downloads, count_failures, bytes_served FROM account WHERE user = ?", arguments: [user])
            .map(counters(from:))
    }

    private static func counters(from row: Row) -> AccountCounters {
        AccountCounters(user: text(row, "user"), countDownloads: Int(max(0, integer(row, "count_downloads"))),
                        countFailures: Int(max(0, integer(row, "count_failures"))),
                        bytesServed: UInt64(max(0, integer(row, "bytes_served"))))
    }

    private static func account(from row: Row) -> Account {
        let counters = counters(from: row)
        return Account(user: counters.user, passwordHash: text(row, "password_hash"), countDownloads: counters.countDownloads,
                       countFailures: counters.countFailures, bytesServed: counters.bytesServed)
    }

    /// An integer column, whatever is stored in it: never traps (GRDB's typed
    /// subscript does on a REAL out of `Int64`'s range, and its message
    /// prints the whole row). Out of range is clamped; non-numbers are 0.
    static func integer(_ row: Row, _ column: String) -> Int64 {
        // The untyped subscript: Int64, Double, String, Data or nil, as stored.
        let value: (any DatabaseValueConvertible)? = row[column]
        switch value {
        case let number as Int64:
            return number
        case let number as Double:
            if number.isNaN { return 0 }
            if number >= 9.223372036854775807e18 { return .max }
            if number <= -9.223372036854775808e18 { return .min }
            return Int64(number)
        default:
            return 0
        }
    }

    private static func text(_ row: Row, _ column: String) -> String {
        let value: (any DatabaseValueConvertible)? = row[column]
        return value as? String ?? ""
    }

    /// A database error for the log and the `internal` reply: its code and
    /// message, never the statement's arguments.
    private static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return "SQLite error \(error.resultCode.rawValue): \(error.message ?? "no message")"
        }
        return "\(type(of: error))"
    }
}
