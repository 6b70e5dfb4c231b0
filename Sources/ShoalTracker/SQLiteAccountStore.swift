import Foundation
import GRDB

/// Accounts in an embedded SQLite database (WAL mode), through GRDB.
///
/// Schema (migration `v1`):
/// ```sql
/// CREATE TABLE account (
///   user TEXT PRIMARY KEY NOT NULL,      -- unique, exact
///   password_hash TEXT NOT NULL,         -- pbkdf2-sha256$rounds$salt$hash
///   count_downloads INTEGER NOT NULL DEFAULT 0,
///   count_failures INTEGER NOT NULL DEFAULT 0,
///   bytes_served INTEGER NOT NULL DEFAULT 0,
///   created_at TEXT NOT NULL
/// )
/// ```
public final class SQLiteAccountStore: AccountStore {
    private let queue: DatabaseQueue
    /// The database file.
    public let path: String

    /// Opens (creating if needed) the database at `path` and migrates it.
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
        return migrator
    }

    public func create(_ account: Account) throws(TrackerError) {
        do {
            try queue.write { db in
                try db.execute(
                    sql: "INSERT INTO account (user, password_hash, count_downloads, count_failures, bytes_served, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [account.user, account.passwordHash, account.countDownloads, account.countFailures,
                                Int64(clamping: account.bytesServed), ISO8601DateFormatter().string(from: Date())])
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
            throw .nameTaken(account.user)
        } catch {
            throw .storage("\(error)")
        }
    }

    public func account(named user: String) throws(TrackerError) -> Account? {
        do {
            return try queue.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM account WHERE user = ?", arguments: [user]).map(Self.account(from:))
            }
        } catch {
            throw .storage("\(error)")
        }
    }

    public func recordTransfer(holder user: String, succeeded: Bool, bytes: UInt64) throws(TrackerError) -> Account? {
        do {
            return try queue.write { db in
                let column = succeeded ? "count_downloads" : "count_failures"
                try db.execute(
                    sql: "UPDATE account SET \(column) = \(column) + 1, bytes_served = bytes_served + ? WHERE user = ?",
                    arguments: [Int64(clamping: succeeded ? bytes : 0), user])
                return try Row.fetchOne(db, sql: "SELECT * FROM account WHERE user = ?", arguments: [user]).map(Self.account(from:))
            }
        } catch {
            throw .storage("\(error)")
        }
    }

    public func count() throws(TrackerError) -> Int {
        do {
            return try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM account") ?? 0 }
        } catch {
            throw .storage("\(error)")
        }
    }

    public func all() throws(TrackerError) -> [Account] {
        do {
            return try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM account ORDER BY user").map(Self.account(from:))
            }
        } catch {
            throw .storage("\(error)")
        }
    }

    /// Closes the database.
    public func close() {
        try? queue.close()
    }

    private static func account(from row: Row) -> Account {
        Account(user: row["user"], passwordHash: row["password_hash"], countDownloads: row["count_downloads"],
                countFailures: row["count_failures"], bytesServed: UInt64(max(0, row["bytes_served"] as Int64)))
    }
}
