import NIOCore
import ShoalCore

/// A fast path for `announce`, the costliest request a tracker decodes: a
/// manifest's digests make it kilobytes of JSON, which Foundation's decoder
/// took about 23 µs to read (a 64-chunk file). Plain JSON (``JSONCursor``)
/// with only the members `Announce` knows is read here in one pass; anything
/// else returns nil and goes the ordinary way, which gives the same value or
/// the same error.
extension Announce {
    /// The fast path if it applies, else Foundation's decoder.
    init(fastOrOrdinary frame: Frame) throws(WireError) {
        if let fast = Announce(plainFrame: frame) { self = fast } else { try self.init(frame: frame) }
    }

    /// The fast path alone: nil when it does not apply.
    init?(plainFrame frame: Frame) {
        guard frame.type == .announce else { return nil }
        let decoded: Announce? = frame.payload.withUnsafeReadableBytes { bytes in
            var cursor = JSONCursor(bytes)
            var token: String?
            var replace: Bool?
            var files: [AnnouncedFile]?
            let read = cursor.object { cursor, key in
                switch key {
                case "token":
                    token = cursor.string()
                    return token != nil
                case "replace":
                    replace = cursor.bool()
                    return replace != nil
                case "files":
                    var list: [AnnouncedFile] = []
                    guard cursor.array({ cursor in
                        guard let file = AnnouncedFile(plain: &cursor) else { return false }
                        list.append(file)
                        return true
                    }) else { return false }
                    files = list
                    return true
                default:
                    return false
                }
            }
            guard read, cursor.atEnd, let token, let replace, let files else { return nil }
            return Announce(token: token, replace: replace, files: files)
        }
        guard let decoded else { return nil }
        self = decoded
    }
}

extension AnnouncedFile {
    /// One element of `files`, or nil to give up.
    fileprivate init?(plain cursor: inout JSONCursor) {
        var name: String?
        var contentID: ContentID?
        var manifest: ManifestPayload?
        var chunks: String?
        var have: [Int]?
        var withdrawn: Bool?
        let read = cursor.object { cursor, key in
            // Optional members may be null, as the synthesized decoder allows.
            let optional = ["manifest", "chunks", "have", "withdrawn"].contains(key)
            if optional, cursor.null() { return true }
            switch key {
            case "name":
                name = cursor.string()
                return name != nil
            case "contentID":
                contentID = cursor.string().flatMap(ContentID.init(hex:))
                return contentID != nil
            case "manifest":
                manifest = ManifestPayload(plain: &cursor)
                return manifest != nil
            case "chunks":
                chunks = cursor.string()
                return chunks != nil
            case "have":
                var indices: [Int] = []
                guard cursor.array({ cursor in
                    guard let index = cursor.unsigned() else { return false }
                    indices.append(Int(index))
                    return true
                }) else { return false }
                have = indices
                return true
            case "withdrawn":
                withdrawn = cursor.bool()
                return withdrawn != nil
            default:
                return false
            }
        }
        guard read, let name, let contentID else { return nil }
        self.init(name: name, contentID: contentID, manifest: manifest, chunks: chunks, have: have, withdrawn: withdrawn)
    }
}

extension ManifestPayload {
    /// A manifest object, or nil to give up.
    fileprivate init?(plain cursor: inout JSONCursor) {
        var fileSize: UInt64?
        var chunkSize: UInt32?
        var digests: String?
        let read = cursor.object { cursor, key in
            switch key {
            case "fileSize":
                fileSize = cursor.unsigned()
                return fileSize != nil
            case "chunkSize":
                chunkSize = cursor.unsigned().flatMap { UInt32(exactly: $0) }
                return chunkSize != nil
            case "digests":
                digests = cursor.string()
                return digests != nil
            default:
                return false
            }
        }
        guard read, let fileSize, let chunkSize, let digests else { return nil }
        self.init(fileSize: fileSize, chunkSize: chunkSize, digests: digests)
    }
}
