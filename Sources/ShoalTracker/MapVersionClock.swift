/// Where chunk-map versions come from (``TrackerRegistry/Holding/version``):
/// a version names one state of one holding's map, and must never name
/// another state of any holding, on any tracker instance, so that a version a
/// downloader remembers from an earlier session (or from another instance)
/// never matches a later map.
///
/// - One tracker alone (SQLite) counts in memory (``local``).
/// - Several instances on one PostgreSQL database take versions from one
///   database sequence, in blocks handed to the registry ahead of need
///   (``shared``, ``supply(_:)``), so an announce costs no extra round trip.
///   Blocks from one sequence grow, so the versions one instance gives one
///   holding grow too (a holding changes only on the instance that owns its session).
public struct MapVersionClock: Sendable {
    private var last: UInt64 = 0
    /// Blocks not yet used, oldest first; nil: the clock counts on its own.
    private var blocks: [Range<UInt64>]?

    /// A clock that counts in memory.
    public static var local: MapVersionClock { MapVersionClock(blocks: nil) }
    /// A clock that gives out only the versions supplied to it.
    public static var shared: MapVersionClock { MapVersionClock(blocks: []) }

    /// Whether versions must be supplied (``shared``).
    public var isShared: Bool { blocks != nil }

    /// How many versions can be given out before more must be supplied (Int.max when local).
    public var available: Int {
        guard let blocks else { return .max }
        return blocks.reduce(0) { $0 + $1.count }
    }

    /// Adds blocks of versions (from the shared sequence).
    public mutating func supply(_ ranges: [Range<UInt64>]) {
        guard blocks != nil else { return }
        blocks!.append(contentsOf: ranges.filter { !$0.isEmpty && $0.lowerBound > last })
        blocks!.sort { $0.lowerBound < $1.lowerBound }
    }

    /// The next version.
    mutating func next() throws(TrackerError) -> UInt64 {
        guard blocks != nil else {
            last += 1
            return last
        }
        guard let block = blocks!.first else {
            throw .storage("the tracker has run out of chunk-map versions from the database; try again")
        }
        let version = block.lowerBound
        if block.count == 1 { blocks!.removeFirst() } else { blocks![0] = (version + 1)..<block.upperBound }
        last = version
        return version
    }
}
