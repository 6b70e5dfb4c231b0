import Foundation
import NIOCore
import ShoalCore
import ShoalWire

/// `fileDetails` replies by request, encoded once until what they show
/// changes, with a gap where each content's download id goes (ids are per
/// asker and per request; ``DownloadGrants`` issues them on every request,
/// hit or miss).
///
/// An entry goes when one of its contents, or the file name it was asked
/// by, is touched (``TrackerRegistry/Touched``: a holding, or a holder's
/// address, counters or key changed), not at every change of the registry:
/// an announce of one file leaves the replies about the others cached.
///
/// A reply is the same for every asker who holds none of its contents (the
/// registry leaves the asker's own account out of the holders), so an entry
/// remembers who holds them and serves only other askers. Requests with
/// `knownMaps` (a downloader's refresh, its own deltas) are not cached.
///
/// Bounded: at most ``maximumBytes`` of encoded replies; past that, new
/// replies are built but not kept until the next generation.
struct DetailsCache {
    /// What a reply depends on besides the registry and the asker.
    struct Key: Hashable {
        /// Compared byte for byte, as the registry compares file names.
        var name: FileName?
        var contentID: ContentID?
        var withManifest: Bool
        var holdersAfter: String?
    }

    /// One content of a reply: its JSON object with the download id left
    /// empty, cut where the id goes, and what a grant for it needs.
    struct Part {
        var contentID: ContentID
        var fileSize: UInt64
        var holders: [String]
        /// Up to and including `"downloadID":"`.
        var head: [UInt8]
        /// From the id's closing quote on.
        var tail: [UInt8]
    }

    struct Entry {
        var parts: [Part]
        var moreContents: Int?
        /// Every user holding one of the contents: an asker among them gets a reply of its own.
        var holderUsers: Set<String>
        var byteCount: Int { parts.reduce(32) { $0 + $1.head.count + $1.tail.count + 64 } }

        /// The reply for an asker, with `downloadIDs` (one per part, in order).
        func payload(downloadIDs: [String]) throws(TrackerError) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.reserveCapacity(byteCount)
            buffer.writeStaticString(#"{"files":["#)
            for (index, part) in parts.enumerated() {
                if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                buffer.writeBytes(part.head)
                buffer.writeString(downloadIDs[index])
                buffer.writeBytes(part.tail)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
            if let moreContents { buffer.writeString(#","moreContents":\#(moreContents)"#) }
            buffer.writeInteger(UInt8(ascii: "}"))
            guard buffer.readableBytes <= FrameHeader.maximumPayloadLength else {
                throw .tooLarge("a fileDetails reply of \(buffer.readableBytes) bytes does not fit in one frame")
            }
            return buffer
        }
    }

    /// Encoded bytes kept at most; past it, the cache starts anew.
    var maximumBytes = 16 << 20
    private var entries: [Key: Entry] = [:]
    /// The keys of the entries showing each content, and asked by each name.
    private var byContent: [ContentID: Set<Key>] = [:]
    private var byName: [FileName: Set<Key>] = [:]
    private(set) var byteCount = 0

    /// The number of entries kept.
    var count: Int { entries.count }

    /// The entry for `key`, if kept.
    func entry(_ key: Key) -> Entry? { entries[key] }

    /// Keeps `entry` for `key`, made from the registry as it is now.
    mutating func store(_ entry: Entry, for key: Key) {
        guard entries[key] == nil else { return }
        let size = entry.byteCount
        guard size <= maximumBytes else { return }
        if byteCount + size > maximumBytes { removeAll() }
        entries[key] = entry
        byteCount += size
        for content in Set(entry.parts.map(\.contentID)).union(key.contentID.map { [$0] } ?? []) { byContent[content, default: []].insert(key) }
        if let name = key.name { byName[name, default: []].insert(key) }
    }

    /// Drops the entries showing a touched content or asked by a touched name.
    mutating func invalidate(_ touched: TrackerRegistry.Touched) {
        var keys: Set<Key> = []
        for content in touched.contents { keys.formUnion(byContent.removeValue(forKey: content) ?? []) }
        for name in touched.names { keys.formUnion(byName.removeValue(forKey: name) ?? []) }
        for key in keys { remove(key) }
    }

    mutating func removeAll() {
        entries = [:]
        byContent = [:]
        byName = [:]
        byteCount = 0
    }

    private mutating func remove(_ key: Key) {
        guard let entry = entries.removeValue(forKey: key) else { return }
        byteCount -= entry.byteCount
        for content in Set(entry.parts.map(\.contentID)).union(key.contentID.map { [$0] } ?? []) {
            byContent[content]?.remove(key)
            if byContent[content]?.isEmpty == true { byContent.removeValue(forKey: content) }
        }
        if let name = key.name {
            byName[name]?.remove(key)
            if byName[name]?.isEmpty == true { byName.removeValue(forKey: name) }
        }
    }

    /// `detail`'s JSON with an empty download id, cut where the id goes
    /// (``FileDetail/encodedAroundDownloadID()``).
    static func part(_ detail: FileDetail, holders: [String]) -> Part {
        let (head, tail) = detail.encodedAroundDownloadID()
        return Part(contentID: detail.contentID, fileSize: detail.size ?? 0, holders: holders, head: head, tail: tail)
    }
}
