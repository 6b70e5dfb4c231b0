import Foundation
import ShoalCore

/// A ``ChunkMap`` as it travels inside JSON messages (`announce`'s `chunks`,
/// a holder's `chunks` in `fileDetails`): base64 of ``ChunkMap/bytes``. The
/// one place where a map becomes text and back; everything past the message
/// speaks ``ChunkMap``.
extension ChunkMap {
    /// Decodes a map of `count` chunks from its message form; nil when the
    /// text is not base64 of exactly `ceil(count / 8)` bytes, or sets bits
    /// past `count`.
    public init?(base64 text: String, count: Int) {
        guard let data = Data(base64Encoded: text) else { return nil }
        self.init(count: count, bytes: data)
    }

    /// The map's message form: base64 of its wire layout.
    public var base64: String { Data(bytes).base64EncodedString() }

    /// The length of ``base64`` without building it: 4 characters per 3 bytes, padded.
    public var base64Length: Int { ((count + 7) / 8 + 2) / 3 * 4 }
}

extension Holder {
    /// The holder's map of `count` chunks (the manifest's chunk count); nil
    /// when it holds every chunk, sent `gained` instead, or sent a map that
    /// does not fit `count`.
    public func chunkMap(count: Int) -> ChunkMap? {
        chunks.flatMap { ChunkMap(base64: $0, count: count) }
    }
}
