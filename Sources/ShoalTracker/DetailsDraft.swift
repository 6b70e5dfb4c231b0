import NIOCore
import ShoalCore
import ShoalWire

/// A `details` reply the cache did not have, as the ``Tracker`` actor took it
/// from the registry: the registry's view and what the reply's cache entry
/// and download ids need. The connection's task turns it into the reply
/// (``payload()``), off the actor.
///
/// Taking the view is a few microseconds; encoding it (the manifest in
/// base64, the JSON) is five times that. When a swarm starts, every peer's
/// first `details` misses the cache at once, and on the actor those
/// encodings ran one after another while every announce queued behind them.
///
/// The entry is kept only if the registry has not changed since the view was
/// taken (``ServedReplies/storeDetails(_:for:madeAt:)``): a change published
/// meanwhile may have touched what it shows.
public struct DetailsDraft: Sendable {
    let view: FileView
    let key: DetailsCache.Key
    /// Whether the reply may be kept for other askers.
    let cacheable: Bool
    /// Every user holding one of the contents.
    let holderUsers: Set<String>
    let asker: String
    /// The asker's download id to extend, if its request carried one.
    let extending: String?
    /// The registry's generation when the view was taken.
    let generation: UInt64
    let served: ServedReplies

    /// The reply's payload: encoded, kept in the cache when it may be, with
    /// the asker's download ids.
    func payload() throws(TrackerError) -> ByteBuffer {
        let details = FileDetails(view)
        let entry = DetailsCache.Entry(parts: details.files.map { DetailsCache.part($0, holders: $0.holders.map(\.user)) },
                                       moreContents: details.moreContents, holderUsers: holderUsers)
        if cacheable && !holderUsers.contains(asker) {
            served.storeDetails(entry, for: key, madeAt: generation)
        }
        let t = served.now()
        let ids = entry.parts.map { part in
            served.issue(account: asker, contentID: part.contentID, fileSize: part.fileSize, holders: part.holders,
                         extending: extending, now: t)
        }
        return try entry.payload(downloadIDs: ids)
    }
}
