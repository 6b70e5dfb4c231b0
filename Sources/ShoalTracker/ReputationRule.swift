/// How much a `report` moves a holder's counters, so that accounts anyone can
/// register for free cannot push an honest holder down.
///
/// - Every accepted `success` adds 1 to the holder's downloads and its bytes
///   to its bytes served (both saturate; they never leave 64-bit range).
/// - A `failure` counts only the first time a given account reports one
///   about that holder (over all contents): k accounts move a holder's
///   failures by at most k, however many files it shares.
/// - Such a first failure counts 1 when the reporter has a **record**: its
///   account is at least ``minimumRecordAge`` seconds old and at least
///   ``minimumVouchers`` other accounts have reported a success about it
///   (it has served verified chunks to others).
/// - From reporters without a record, only every ``newcomerFailuresPerCount``-th
///   distinct complainant adds 1: together they weigh 1/k each.
///
/// Every report is kept (SQLite table `report`), once per (reporter, holder,
/// content), whether or not it moved a counter.
public struct ReputationRule: Sendable, Equatable {
    /// Seconds an account must exist before its failures count in full.
    public var minimumRecordAge: Double = 24 * 3600
    /// Distinct other accounts that must have reported a success about an
    /// account before its failures count in full.
    public var minimumVouchers = 3
    /// Distinct reporters without a record whose failures together add 1.
    public var newcomerFailuresPerCount = 8

    public init(minimumRecordAge: Double = 24 * 3600, minimumVouchers: Int = 3, newcomerFailuresPerCount: Int = 8) {
        self.minimumRecordAge = minimumRecordAge
        self.minimumVouchers = minimumVouchers
        self.newcomerFailuresPerCount = max(1, newcomerFailuresPerCount)
    }
}
