import Foundation
import ShoalCore
import ShoalWire

// The boundary between the wire's messages (JSON text: names as strings,
// manifests and chunk maps in base64) and the registry's domain types. Every
// request is parsed here once, and every reply built here once.

extension Announcement {
    /// Parses an `announce`: at most `maximumFiles` entries, each name
    /// checked, each manifest validated against its content id, each chunk
    /// map decoded from base64. All or nothing: the first bad entry refuses
    /// the whole request.
    public init(_ message: Announce, maximumFiles: Int = .max) throws(TrackerError) {
        guard message.files.count <= maximumFiles else {
            throw .tooLarge("an announce may list at most \(maximumFiles) files, this one lists \(message.files.count); send several")
        }
        var entries: [Entry] = []
        entries.reserveCapacity(message.files.count)
        for file in message.files {
            let name: FileName
            do { name = try FileName(file.name) } catch { throw .invalidName(error) }
            if file.withdrawn == true {
                entries.append(.withdraw(name: name, contentID: file.contentID))
                continue
            }
            var manifest: Manifest?
            if let payload = file.manifest {
                do { manifest = try payload.manifest(expecting: file.contentID) } catch { throw .badRequest("\(file.name): \(error)") }
            }
            var bytes: [UInt8]?
            if let text = file.chunks {
                guard let data = Data(base64Encoded: text) else {
                    throw .badRequest("\(file.name): 'chunks' is not a valid chunk map (not base64 of one bit per chunk)")
                }
                bytes = Array(data)
            }
            entries.append(.hold(HeldFile(name: name, contentID: file.contentID, manifest: manifest, chunkBytes: bytes, have: file.have ?? [])))
        }
        self.init(replace: message.replace, entries: entries)
    }
}

extension FileDetails {
    /// The `fileDetails` reply showing `view` (download ids are added by the tracker).
    public init(_ view: FileView) {
        self.init(files: view.contents.map(FileDetail.init), moreContents: view.moreContents > 0 ? view.moreContents : nil)
    }
}

extension FileDetail {
    public init(_ content: FileView.Content) {
        self.init(name: content.name, contentID: content.contentID, manifest: content.manifest.map(ManifestPayload.init),
                  holders: content.holders.map(Holder.init), moreHolders: content.moreHolders > 0 ? content.moreHolders : nil,
                  size: content.size, chunkCount: content.chunkCount, completeHolders: content.completeHolders,
                  partialHolders: content.partialHolders, firstSharedBy: content.firstSharedBy, since: content.since)
    }
}

extension Holder {
    public init(_ holder: FileView.Holder) {
        self.init(user: holder.user, host: holder.host, port: holder.port, countDownloads: holder.countDownloads,
                  countFailures: holder.countFailures, bytesServed: holder.bytesServed, chunks: holder.chunks?.base64,
                  keyFingerprint: holder.keyFingerprint)
        mapVersion = holder.mapVersion
        gained = holder.gained
    }
}

extension ManifestPart {
    /// The `manifestPart` reply carrying `slice`.
    public init(_ slice: ManifestSlice) {
        var digests = [UInt8]()
        digests.reserveCapacity(slice.digests.count * ChunkDigest.byteCount)
        for digest in slice.digests { digest.append(to: &digests) }
        self.init(contentID: slice.contentID, fileSize: slice.fileSize, chunkSize: slice.chunkSize, from: slice.from,
                  digests: Data(digests).base64EncodedString())
    }
}
