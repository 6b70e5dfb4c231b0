import Foundation
import NIOCore
import ShoalCore
import ShoalWire

/// The file list as `list` answers it: every row, sorted by name (bytes)
/// then content id, each kept with its JSON, and the pages asked for,
/// encoded.
///
/// Kept current by the changes themselves: each change of the registry
/// hands over the rows of the names and contents it touched
/// (``TrackerRegistry/listRows(touching:)``), and only those rows are
/// replaced, added or dropped, so an announce costs the list one row, not
/// a rebuild of every row. A page is its rows' JSON put together, which
/// reads exactly as ``FileList`` encodes it; pages are kept until the next
/// change of a row. Values, no I/O; ``ServedReplies`` holds it behind a lock,
/// so the event loops answer `list` from it.
struct ListCache {
    /// The rows, sorted by ``precedes(_:_:)``.
    private(set) var rows: [ListedFile] = []
    /// Each row's JSON, each way ``FileList`` encodes it, once a page has asked for it.
    private var encoded: [EncodedRow] = []
    /// The names each content is listed under here (rows to drop when a content is touched).
    private var namesOf: [ContentID: [String]] = [:]
    /// Encoded pages by their first row's index and encoding, of `pageSize` rows at most.
    private var pages: [PageKey: ByteBuffer] = [:]
    private var pageSize = 0
    /// Bytes in `pages`.
    private var pageBytes = 0
    /// At most this many bytes of encoded pages are kept between two
    /// changes: a cursor may start a page at any row, and a client crafting
    /// one for every row must not make the cache hold the list a hundred
    /// times over.
    static let maximumBytes = 16 << 20

    /// The order of the list: by name, byte by byte, then by content id.
    static func precedes(_ a: ListedFile, _ b: ListedFile) -> Bool {
        precedes(name: a.name.utf8, a.contentID, b.name.utf8, b.contentID)
    }

    private static func precedes(name a: some Sequence<UInt8>, _ aID: ContentID, _ b: some Sequence<UInt8>, _ bID: ContentID) -> Bool {
        if a.elementsEqual(b) { return aID < bID }
        return a.lexicographicallyPrecedes(b)
    }

    /// Replaces every row showing a name or a content of `touched` with
    /// `fresh`: the registry's rows for them now (a row missing from it is
    /// gone).
    mutating func update(touched: TrackerRegistry.Touched, rows fresh: [ListedFile]) {
        guard !touched.isEmpty else { return }
        var stale: [Pair] = []
        for name in touched.names {
            var index = Self.firstIndex(in: rows) { !$0.name.utf8.lexicographicallyPrecedes(name.value.utf8) }
            while index < rows.count, rows[index].name.utf8.elementsEqual(name.value.utf8) {
                stale.append(Pair(rows[index].name, rows[index].contentID))
                index += 1
            }
        }
        for id in touched.contents {
            for name in namesOf[id] ?? [] { stale.append(Pair(name, id)) }
        }
        var changed = false
        for row in fresh {
            let (index, found) = position(of: Pair(row.name, row.contentID))
            if found {
                guard rows[index] != row else { continue }
                rows[index] = row
                encoded[index] = EncodedRow()
            } else {
                rows.insert(row, at: index)
                encoded.insert(EncodedRow(), at: index)
                namesOf[row.contentID, default: []].append(row.name)
            }
            changed = true
        }
        let kept = Set(fresh.map { Pair($0.name, $0.contentID) })
        for pair in stale where !kept.contains(pair) {
            let (index, found) = position(of: pair)
            guard found else { continue }
            rows.remove(at: index)
            encoded.remove(at: index)
            namesOf[pair.id]?.removeAll { $0.utf8.elementsEqual(pair.name) }
            if namesOf[pair.id]?.isEmpty == true { namesOf.removeValue(forKey: pair.id) }
            changed = true
        }
        if changed {
            pages = [:]
            pageBytes = 0
        }
    }

    /// A row's JSON as an object (``ListedFile/encodedJSON()``) and as an
    /// array (``ListedFile/encodedCompactJSON()``), what ``WireJSON`` encodes;
    /// each made when a page first needs it, not by the change (which the
    /// actor makes, one at a time), and only in the form clients ask for.
    private struct EncodedRow {
        var object: [UInt8]?
        var array: [UInt8]?
    }

    /// Row `index`'s JSON, made now if no page needed it in that form before.
    private mutating func bytes(of index: Int, compact: Bool) -> [UInt8] {
        if compact {
            if let array = encoded[index].array { return array }
            let array = rows[index].encodedCompactJSON()
            encoded[index].array = array
            return array
        }
        if let object = encoded[index].object { return object }
        let object = rows[index].encodedJSON()
        encoded[index].object = object
        return object
    }

    private struct PageKey: Hashable {
        var start: Int
        var compact: Bool
    }

    /// A name (its bytes: the list compares names byte by byte) and a content.
    private struct Pair: Hashable {
        var name: [UInt8]
        var id: ContentID
        init(_ name: String, _ id: ContentID) {
            self.name = Array(name.utf8)
            self.id = id
        }
    }

    /// The page after `after` (at most `pageSize` rows), encoded once until
    /// the rows change; its rows as arrays when `compact` (see ``FileList``).
    mutating func page(after: ListCursor?, pageSize: Int, compact: Bool = false) throws(TrackerError) -> ByteBuffer {
        if pageSize != self.pageSize {
            pages = [:]
            pageBytes = 0
            self.pageSize = pageSize
        }
        let start = Self.firstRow(after: after, in: rows)
        let key = PageKey(start: start, compact: compact)
        if let page = pages[key] { return page }
        let end = min(rows.count, start + pageSize)
        let rowBytes = (start..<end).map { bytes(of: $0, compact: compact) }
        var page = ByteBuffer()
        page.reserveCapacity(rowBytes.reduce(64 + 2 * FileName.maximumLength) { $0 + $1.count + 1 })
        // Keys sorted, as every sender writes them: "files" < "next" < "rows".
        let next = end < rows.count ? WireJSON.encode(ListCursor(name: rows[end - 1].name, contentID: rows[end - 1].contentID)) : nil
        if compact {
            page.writeInteger(UInt8(ascii: "{"))
            if let next {
                page.writeStaticString(#""next":"#)
                page.writeBytes(next)
                page.writeInteger(UInt8(ascii: ","))
            }
            page.writeStaticString(#""rows":["#)
        } else {
            page.writeStaticString(#"{"files":["#)
        }
        for (offset, bytes) in rowBytes.enumerated() {
            if offset > 0 { page.writeInteger(UInt8(ascii: ",")) }
            page.writeBytes(bytes)
        }
        page.writeInteger(UInt8(ascii: "]"))
        if !compact, let next {
            page.writeStaticString(#","next":"#)
            page.writeBytes(next)
        }
        page.writeInteger(UInt8(ascii: "}"))
        guard page.readableBytes <= FrameHeader.maximumPayloadLength else {
            throw .tooLarge("a page of the file list does not fit in one frame (\(page.readableBytes) bytes)")
        }
        // Bounded: past `maximumBytes`, pages are built but not kept until the next change.
        if pageBytes + page.readableBytes <= Self.maximumBytes {
            pages[key] = page
            pageBytes += page.readableBytes
        }
        return page
    }

    /// Where the row of `pair` is (`found`), or would go.
    private func position(of pair: Pair) -> (index: Int, found: Bool) {
        let index = Self.firstIndex(in: rows) { !Self.precedes(name: $0.name.utf8, $0.contentID, pair.name, pair.id) }
        let found = index < rows.count && rows[index].contentID == pair.id && rows[index].name.utf8.elementsEqual(pair.name)
        return (index, found)
    }

    /// The index of the first row past `after`, by (name bytes, content id); 0 without a cursor.
    static func firstRow(after: ListCursor?, in rows: [ListedFile]) -> Int {
        guard let after else { return 0 }
        return firstIndex(in: rows) { precedes(name: after.name.utf8, after.contentID, $0.name.utf8, $0.contentID) }
    }

    /// The first index of sorted `rows` from which `isPast` holds (it holds
    /// for no row before that one, and for every row from it on).
    private static func firstIndex(in rows: [ListedFile], where isPast: (ListedFile) -> Bool) -> Int {
        var low = 0, high = rows.count
        while low < high {
            let mid = (low + high) / 2
            if isPast(rows[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}
