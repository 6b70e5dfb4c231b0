import ShoalCore
import ShoalTracker
import Testing

/// The download ids reports must carry: bound to account, content and
/// holders; bounded per account (least recently used first) and overall.
@Suite("Download grants")
struct DownloadGrantsTests {
    let content = ContentID(hex: String(repeating: "ab", count: 32))!
    let other = ContentID(hex: String(repeating: "cd", count: 32))!

    @Test func aGrantIsBoundToItsAccountContentAndHolders() {
        var grants = DownloadGrants()
        let id = grants.issue(account: "ana", contentID: content, fileSize: 100, holders: ["bob"], extending: nil, now: 0)
        let grant = grants.grant(id, now: 1)
        #expect(grant?.account == "ana" && grant?.contentID == content && grant?.holders == ["bob"] && grant?.fileSize == 100)
        // Extended by a refresh of the same account and content; anyone else's gets a new id.
        #expect(grants.issue(account: "ana", contentID: content, fileSize: 100, holders: ["cy"], extending: id, now: 2) == id)
        #expect(grants.grant(id, now: 3)?.holders == ["bob", "cy"])
        #expect(grants.issue(account: "eve", contentID: content, fileSize: 100, holders: ["cy"], extending: id, now: 4) != id)
        #expect(grants.issue(account: "ana", contentID: other, fileSize: 100, holders: ["cy"], extending: id, now: 5) != id)
        #expect(grants.grant(id, now: 5)?.holders == ["bob", "cy"], "not extended by another account or content")
        // Forgotten once unused for its lifetime.
        #expect(grants.grant(id, now: 2 + DownloadGrants().lifetime + 1) == nil)
    }

    @Test func anAccountKeepsItsMostRecentlyUsedGrants() {
        var grants = DownloadGrants(perAccount: 3, capacity: 100, holdersPerGrant: 2)
        let ids = (0..<3).map { grants.issue(account: "ana", contentID: content, fileSize: 1, holders: ["h\($0)"], extending: nil, now: Double($0)) }
        // The first is used again: the second is now the least recently used.
        _ = grants.issue(account: "ana", contentID: content, fileSize: 1, holders: ["x", "y", "z"], extending: ids[0], now: 10)
        #expect(grants.grant(ids[0], now: 10)?.holders.count == 2, "at most holdersPerGrant holders")
        let fourth = grants.issue(account: "ana", contentID: content, fileSize: 1, holders: [], extending: nil, now: 11)
        #expect(grants.grant(ids[1], now: 11) == nil, "the least recently used went")
        #expect(grants.grant(ids[0], now: 11) != nil && grants.grant(ids[2], now: 11) != nil && grants.grant(fourth, now: 11) != nil)
        #expect(grants.count == 3)
        // Other accounts are not touched.
        let bob = grants.issue(account: "bob", contentID: content, fileSize: 1, holders: [], extending: nil, now: 12)
        #expect(grants.grant(bob, now: 12) != nil && grants.count == 4)
    }

    /// Ids are 64 hex digits, distinct, and found only by the grants that
    /// issued them (another tracker process, or this one before a restart,
    /// knows none of them); a malformed id is simply not found.
    @Test func idsBelongToTheGrantsThatIssuedThem() {
        var grants = DownloadGrants()
        var elsewhere = DownloadGrants()
        let ids = (0..<100).map { grants.issue(account: "ana", contentID: content, fileSize: 1, holders: [], extending: nil, now: Double($0)) }
        #expect(Set(ids).count == 100)
        #expect(ids.allSatisfy { $0.utf8.count == 64 && $0.allSatisfy { "0123456789abcdef".contains($0) } })
        let foreign = elsewhere.issue(account: "ana", contentID: content, fileSize: 1, holders: [], extending: nil, now: 0)
        #expect(grants.grant(foreign, now: 1) == nil)
        #expect(elsewhere.grant(ids[0], now: 1) == nil)
        #expect(grants.issue(account: "ana", contentID: content, fileSize: 1, holders: [], extending: foreign, now: 1) != foreign)
        for bad in ["", "zz", String(ids[5].dropLast()), ids[5] + "0", String(ids[5].prefix(48)) + "gggggggggggggggg"] {
            #expect(grants.grant(bad, now: 1) == nil)
        }
    }

    @Test func theWholeIsBounded() {
        var grants = DownloadGrants(perAccount: 4, capacity: 40, holdersPerGrant: 4)
        for i in 0..<1_000 {
            _ = grants.issue(account: "user\(i % 50)", contentID: content, fileSize: 1, holders: [], extending: nil, now: Double(i))
            #expect(grants.count <= 40)
        }
    }
}
