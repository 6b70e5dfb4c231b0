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
/// sleeping.
///
/// An id is 64 hex digits: 192 random bits drawn once per value (so ids of
/// another tracker instance, or of this one before a restart, are not found
/// here), then a 64-bit sequence number. Ids need not be secret: a grant
/// serves only the account it was issued to, so a guessed id of another
/// account's is refused like a made-up one; and a sequence number costs no
/// system call per `details`, where random bits did.
///
/// Bounded: at most ``perAccount`` grants per account and
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

    /// Grants by the sequence number ending their id.
    private var grants: [UInt64: Grant] = [:]
    /// Each account's grants (sequence numbers), least recently used first.
    private var byAccount: [String: [UInt64]] = [:]
    /// The first 48 hex digits of every id this value issues.
    private let prefix: String
    private var nextNumber: UInt64 = 0

    public init(perAccount: Int = 64, capacity: Int = 65_536, holdersPerGrant: Int = 4096, lifetime: Double = 24 * 3600) {
        self.perAccount = perAccount
        self.capacity = capacity
        self.holdersPerGrant = holdersPerGrant
        self.lifetime = lifetime
        self.prefix = String(SessionToken.random().value.prefix(48))
        precondition(prefix.utf8.count == 48, "a session token is 64 hex digits")
    }

    /// The number of grants held.
    public var count: Int { grants.count }

    /// The grant behind `id`, if it exists and has not expired at `now`.
    public func grant(_ id: String, now: Double) -> Grant? {
        guard let number = number(of: id), let grant = grants[number], now - grant.lastUsed <= lifetime else { return nil }
        return grant
    }

    /// Lists `holders` of `contentID` to `account`: extends the grant `id`
    /// when it is this account's grant for this content, else issues a new
    /// one. Returns the id the reply carries.
    public mutating func issue(account: String, contentID: ContentID, fileSize: UInt64, holders: [String],
                               extending id: String?, now: Double) -> String {
        if let id, let number = number(of: id), var grant = grants[number], now - grant.lastUsed <= lifetime,
           grant.account == account, grant.contentID == contentID {
            for holder in holders where grant.holders.count < holdersPerGrant { grant.holders.insert(holder) }
            grant.lastUsed = now
            grants[number] = grant
            // The account's ids stay in the order they were last used.
            if let index = byAccount[account]?.firstIndex(of: number), index != byAccount[account]!.count - 1 {
                byAccount[account]!.remove(at: index)
                byAccount[account]!.append(number)
            }
            return id
        }
        nextNumber &+= 1
        let number = nextNumber
        grants[number] = Grant(account: account, contentID: contentID, fileSize: fileSize,
                               holders: Set(holders.prefix(holdersPerGrant)), lastUsed: now)
        byAccount[account, default: []].append(number)
        if byAccount[account]!.count > perAccount { evictOldest(of: account) }
        if grants.count > capacity { evictLeastRecentlyUsed(now: now) }
        return idString(number)
    }

    /// Drops the account's least recently used grant: the first of its ids,
    /// which are kept in the order they were last used (no lookup per id:
    /// this runs on every `details` of an account at its limit).
    private mutating func evictOldest(of account: String) {
        guard let oldest = byAccount[account]?.first else { return }
        byAccount[account]!.removeFirst()
        grants.removeValue(forKey: oldest)
    }

    /// Drops the expired grants, and if still over capacity the least recently used.
    private mutating func evictLeastRecentlyUsed(now: Double) {
        for (number, grant) in grants where now - grant.lastUsed > lifetime { remove(number) }
        guard grants.count > capacity else { return }
        let excess = grants.count - capacity * 3 / 4
        for (number, _) in grants.sorted(by: { $0.value.lastUsed < $1.value.lastUsed }).prefix(excess) { remove(number) }
    }

    private mutating func remove(_ number: UInt64) {
        guard let grant = grants.removeValue(forKey: number) else { return }
        byAccount[grant.account]?.removeAll { $0 == number }
        if byAccount[grant.account]?.isEmpty == true { byAccount.removeValue(forKey: grant.account) }
    }

    /// The id of grant `number`: the prefix, then the number as 16 hex digits.
    private func idString(_ number: UInt64) -> String {
        // One allocation: every `details` reply carries a fresh id.
        String(unsafeUninitializedCapacity: 64) { bytes in
            var count = 0
            for byte in prefix.utf8 {
                bytes[count] = byte
                count += 1
            }
            for shift in stride(from: 60, through: 0, by: -4) {
                let digit = UInt8(truncatingIfNeeded: number >> UInt64(shift)) & 0x0F
                bytes[count] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                count += 1
            }
            return count
        }
    }

    /// The sequence number in `id`, if it is an id of this value's.
    private func number(of id: String) -> UInt64? {
        guard id.utf8.count == 64, id.hasPrefix(prefix) else { return nil }
        return UInt64(id.suffix(16), radix: 16)
    }
}
