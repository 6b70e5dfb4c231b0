/// The flag bits of a frame header.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The chunk bytes of a `chunkData` payload are a zlib (RFC 1950) stream.
    public static let compressed = FrameFlags(rawValue: 0x01)
    /// On a `chunkRequest`: send the chunk stored, not compressed (the
    /// downloader's link is faster than it can inflate).
    public static let stored = FrameFlags(rawValue: 0x02)
}
