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
    /// Each row's JSON, as ``ControlMessage`` encodes it (sorted keys).
    private var encoded: [[UInt8]] = []
    /// The names each content is listed under here (rows to drop when a content is touched).
    private var namesOf: [ContentID: [String]] = [:]
    /// Encoded pages by their first row's index, of `pageSize` rows at most.
    private var pages: [Int: ByteBuffer] = [:]
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
        precedes(name: a.name, a.contentID, b.name, b.contentID)
    }

    private static func precedes(name a: String, _ aID: ContentID, _ b: String, _ bID: ContentID) -> Bool {
        if a.utf8.elementsEqual(b.utf8) { return aID < bID }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// Replaces every row showing a name or a content of `touched` with
    /// `fresh`: the registry's rows for them now (a row missing from it is
    /// gone).
    mutating func update(touched: TrackerRegistry.Touched, rows fresh: [ListedFile]) {
        guard !touched.isEmpty else { return }
        var stale: [(name: String, id: ContentID)] = []
        for name in touched.names {
            var index = Self.firstRow(name: name.value, in: rows)
            while index < rows.count, rows[index].name.utf8.elementsEqual(name.value.utf8) {
                stale.append((rows[index].name, rows[index].contentID))
                index += 1
            }
        }
        for id in touched.contents {
            for name in namesOf[id] ?? [] { stale.append((name, id)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var changed = false
        for row in fresh {
            let index = position(of: row.name, row.contentID)
            if index < rows.count, rows[index].contentID == row.contentID, rows[index].name.utf8.elementsEqual(row.name.utf8) {
                guard rows[index] != row else { continue }
                rows[index] = row
                encoded[index] = Array(try! encoder.encode(row))
            } else {
                rows.insert(row, at: index)
                encoded.insert(Array(try! encoder.encode(row)), at: index)
                namesOf[row.contentID, default: []].append(row.name)
            }
            changed = true
        }
        let kept = Set(fresh.map { Pair(name: $0.name, id: $0.contentID) })
        for (name, id) in stale where !kept.contains(Pair(name: name, id: id)) {
            let index = position(of: name, id)
            guard index < rows.count, rows[index].contentID == id, rows[index].name.utf8.elementsEqual(name.utf8) else { continue }
            rows.remove(at: index)
            encoded.remove(at: index)
            namesOf[id]?.removeAll { $0.utf8.elementsEqual(name.utf8) }
            if namesOf[id]?.isEmpty == true { namesOf.removeValue(forKey: id) }
            changed = true
        }
        if changed {
            pages = [:]
            pageBytes = 0
        }
    }

    /// A name and a content, compared as the list compares them (names byte by byte).
    private struct Pair: Hashable {
        var name: String
        var id: ContentID
        static func == (a: Pair, b: Pair) -> Bool { a.id == b.id && a.name.utf8.elementsEqual(b.name.utf8) }
        func hash(into hasher: inout Hasher) {
            hasher.combine(id)
            for byte in name.utf8 { hasher.combine(byte) }
        }
    }

    /// The page after `after` (at most `pageSize` rows), encoded once until
    /// the rows change.
    mutating func page(after: ListCursor?, pageSize: Int) throws(TrackerError) -> ByteBuffer {
        if pageSize != self.pageSize {
            pages = [:]
            pageBytes = 0
            self.pageSize = pageSize
        }
        let start = Self.firstRow(after: after, in: rows)
        if let page = pages[start] { return page }
        let end = min(rows.count, start + pageSize)
        var page = ByteBuffer()
        page.reserveCapacity(encoded[start..<end].reduce(64 + 2 * FileName.maximumLength) { $0 + $1.count + 1 })
        page.writeStaticString(#"{"files":["#)
        for index in start..<end {
            if index > start { page.writeInteger(UInt8(ascii: ",")) }
            page.writeBytes(encoded[index])
        }
        page.writeInteger(UInt8(ascii: "]"))
        if end < rows.count {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            page.writeStaticString(#","next":"#)
            page.writeBytes(try! encoder.encode(ListCursor(name: rows[end - 1].name, contentID: rows[end - 1].contentID)))
        }
        page.writeInteger(UInt8(ascii: "}"))
        guard page.readableBytes <= FrameHeader.maximumPayloadLength else {
            throw .tooLarge("a page of the file list does not fit in one frame (\(page.readableBytes) bytes)")
        }
        // Bounded: past `maximumBytes`, pages are built but not kept until the next change.
        if pageBytes + page.readableBytes <= Self.maximumBytes {
            pages[start] = page
            pageBytes += page.readableBytes
        }
        return page
    }

    /// The index where the row of `name` and `id` is, or would go.
    private func position(of name: String, _ id: ContentID) -> Int {
        var low = 0, high = rows.count
        while low < high {
            let mid = (low + high) / 2
            if Self.precedes(name: rows[mid].name, rows[mid].contentID, name, id) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The index of the first row named `name` (or where it would go).
    private static func firstRow(name: String, in rows: [ListedFile]) -> Int {
        var low = 0, high = rows.count
        while low < high {
            let mid = (low + high) / 2
            if rows[mid].name.utf8.lexicographicallyPrecedes(name.utf8) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The index of the first row past `after`, by (name bytes, content id); 0 without a cursor.
    static func firstRow(after: ListCursor?, in rows: [ListedFile]) -> Int {
        guard let after else { return 0 }
        var low = 0, high = rows.count
        while low < high {
            let mid = (low + high) / 2
            let row = rows[mid]
            if precedes(name: after.name, after.contentID, row.name, row.contentID) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}
