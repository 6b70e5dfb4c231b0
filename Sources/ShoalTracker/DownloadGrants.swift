import Foundation
import ShoalCore

/// The download ids the tracker has handed out in `fileDetails`, each bound
/// to the account that asked, the content, the file's size and the holders
/// listed to it: the evidence a `report` must carry.
///
/// A report names its download id; it is accepted only from the same
/// account, about the same content, about a holder that id listed, and with
/// no more bytes than the file has. A refresh (`details` carrying the id)
/// adds the holders listed then to the same grant.
///
/// A value fed events with the time passed in, so it is tested without
/// sleeping. Bounded: at most ``perAccount`` grants per account and
/// ``capacity`` in all (the least recently used go first), each listing at
/// most ``holdersPerGrant`` holders; a grant unused for ``lifetime`` seconds
/// is forgotten. Grants live in memory only: after a restart a downloader
/// asks for details again (which `TrackerSession.report` does by itself).
public struct DownloadGrants: Sendable {
    /// One download id and what it was issued for.
    public struct Grant: Sendable, Equatable {
        public var account: String
        public var contentID: ContentID
        public var fileSize: UInt64
        public var holders: Set<String>
        public var lastUsed: Double
    }

    public var perAccount: Int
    public var capacity: Int
    public var holdersPerGrant: Int
    public var lifetime: Double

    private var grants: [String: Grant] = [:]
    /// Each account's grant ids, least recently used first.
    private var byAccount: [String: [String]] = [:]

    public init(perAccount: Int = 64, capacity: Int = 65_536, holdersPerGrant: Int = 4096, lifetime: Double = 24 * 3600) {
        self.perAccount = perAccount
        self.capacity = capacity
        self.holdersPerGrant = holdersPerGrant
        self.lifetime = lifetime
    }

    /// The number of grants held.
    public var count: Int { grants.count }

    /// The grant behind `id`, if it exists and has not expired at `now`.
    public func grant(_ id: String, now: Double) -> Grant? {
        guard let grant = grants[id], now - grant.lastUsed <= lifetime else { return nil }
        return grant
    }

    /// Lists `holders` of `contentID` to `account`: extends the grant `id`
    /// when it is this account's grant for this content, else issues a new
    /// one. Returns the id the reply carries.
    public mutating func issue(account: String, contentID: ContentID, fileSize: UInt64, holders: [String],
                               extending id: String?, now: Double) -> String {
        if let id, var grant = grant(id, now: now), grant.account == account, grant.contentID == contentID {
            for holder in holders where grant.holders.count < holdersPerGrant { grant.holders.insert(holder) }
            grant.lastUsed = now
            grants[id] = grant
            // The account's ids stay in the order they were last used.
            if let index = byAccount[account]?.firstIndex(of: id), index != byAccount[account]!.count - 1 {
                byAccount[account]!.remove(at: index)
                byAccount[account]!.append(id)
            }
            return id
        }
        let id = Self.randomID()
        grants[id] = Grant(account: account, contentID: contentID, fileSize: fileSize,
                           holders: Set(holders.prefix(holdersPerGrant)), lastUsed: now)
        byAccount[account, default: []].append(id)
        if byAccount[account]!.count > perAccount { evictOldest(of: account) }
        if grants.count > capacity { evictLeastRecentlyUsed(now: now) }
        return id
    }

    /// Drops the account's least recently used grant: the first of its ids,
    /// which are kept in the order they were last used (no lookup per id:
    /// this runs on every `details` of an account at its limit).
    private mutating func evictOldest(of account: String) {
        if let oldest = byAccount[account]?.first { remove(oldest) }
    }

    /// Drops the expired grants, and if still over capacity the least recently used.
    private mutating func evictLeastRecentlyUsed(now: Double) {
        for (id, grant) in grants where now - grant.lastUsed > lifetime { remove(id) }
        guard grants.count > capacity else { return }
        let excess = grants.count - capacity * 3 / 4
        for (id, _) in grants.sorted(by: { $0.value.lastUsed < $1.value.lastUsed }).prefix(excess) { remove(id) }
    }

    private mutating func remove(_ id: String) {
        guard let grant = grants.removeValue(forKey: id) else { return }
        byAccount[grant.account]?.removeAll { $0 == id }
        if byAccount[grant.account]?.isEmpty == true { byAccount.removeValue(forKey: grant.account) }
    }

    /// 256 random bits as 64 hex digits, like a session token.
    static func randomID() -> String { SessionToken.random().value }
}
