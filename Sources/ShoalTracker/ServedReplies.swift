import NIOCore
import ShoalCore
import ShoalWire
import Synchronization

/// What a tracker answers `list` and `details` from: the encoded replies of
/// the registry's current generation (``ListCache``, ``DetailsCache``) and
/// the download ids those replies hand out (``DownloadGrants``), behind one
/// lock, so that the event loops answer a request whose reply is cached
/// without a hop to the ``Tracker`` actor (``LoopReplyHandler``), and the
/// actor fills the details cache on a miss.
///
/// The actor publishes every change of the registry (``publish(_:touched:listRows:)``)
/// before the reply to the request that made it is written: whoever saw
/// that reply and asks again is answered from the registry as changed. The
/// list is brought up to date by each change (the rows it touched); a
/// `details` entry goes when one of its contents or its name is touched.
final class ServedReplies: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var lists = ListCache()
        var details = DetailsCache()
        var grants = DownloadGrants()
    }

    private let state = Mutex(State())
    /// Rows per `fileList` page.
    let listPageSize: Int
    /// The clock grants are issued and checked by (seconds).
    let now: @Sendable () -> Double

    init(listPageSize: Int, now: @escaping @Sendable () -> Double) {
        self.listPageSize = listPageSize
        self.now = now
    }

    /// The registry is at `generation` now, with `touched` changed since
    /// the last call, and `listRows` the rows of ``TrackerRegistry/list()``
    /// showing what was touched (``TrackerRegistry/listRows(touching:)``).
    func publish(_ generation: UInt64, touched: TrackerRegistry.Touched, listRows: [ListedFile]) {
        state.withLock { state in
            state.generation = generation
            guard !touched.isEmpty else { return }
            state.details.invalidate(touched)
            state.lists.update(touched: touched, rows: listRows)
        }
    }

    /// The registry's generation as last published.
    var generation: UInt64 { state.withLock { $0.generation } }

    // MARK: list

    /// The page after `after`, as the registry was last published; its rows as arrays when `compact`.
    func listPage(after: ListCursor?, compact: Bool = false) throws(TrackerError) -> ByteBuffer {
        let listPageSize = self.listPageSize
        return try state.withLock { (state) throws(TrackerError) -> ByteBuffer in
            try state.lists.page(after: after, pageSize: listPageSize, compact: compact)
        }
    }

    /// Every row of the list, as the registry was last published.
    var listRows: [ListedFile] { state.withLock { $0.lists.rows } }

    // MARK: details

    /// The cached reply to `key` for `asker`, with fresh download ids (extending `downloadID` where it is the
    /// asker's grant for that content); nil on a miss, or when `asker`
    /// holds one of the contents (its reply leaves its own account out).
    func details(_ key: DetailsCache.Key, asker: String, extending downloadID: String?) throws(TrackerError) -> ByteBuffer? {
        try details(key, asker: asker, extending: downloadID, now: now())
    }

    /// As ``details(_:asker:extending:)``, with the time given.
    func details(_ key: DetailsCache.Key, asker: String, extending downloadID: String?, now t: Double) throws(TrackerError) -> ByteBuffer? {
        let found = state.withLock { state -> (DetailsCache.Entry, [String])? in
            guard let entry = state.details.entry(key), !entry.holderUsers.contains(asker) else { return nil }
            let ids = entry.parts.map { part in
                state.grants.issue(account: asker, contentID: part.contentID, fileSize: part.fileSize, holders: part.holders,
                                   extending: downloadID, now: t)
            }
            return (entry, ids)
        }
        guard let (entry, ids) = found else { return nil }
        return try entry.payload(downloadIDs: ids)
    }

    /// Keeps `entry` as the reply to `key`, made from the registry at
    /// `generation`, unless a change has been published since (it may
    /// have touched what the entry shows; the next miss makes it anew).
    func storeDetails(_ entry: DetailsCache.Entry, for key: DetailsCache.Key, madeAt generation: UInt64) {
        state.withLock { state in
            guard state.generation == generation else { return }
            state.details.store(entry, for: key)
        }
    }

    // MARK: grants

    /// Lists `holders` of `contentID` to `account` (``DownloadGrants/issue(account:contentID:fileSize:holders:extending:now:)``).
    func issue(account: String, contentID: ContentID, fileSize: UInt64, holders: [String], extending id: String?, now t: Double) -> String {
        state.withLock { $0.grants.issue(account: account, contentID: contentID, fileSize: fileSize, holders: holders, extending: id, now: t) }
    }

    /// The grant behind `id`, if it exists and has not expired at `t`.
    func grant(_ id: String, now t: Double) -> DownloadGrants.Grant? {
        state.withLock { $0.grants.grant(id, now: t) }
    }
}
