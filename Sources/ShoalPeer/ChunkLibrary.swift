import Foundation
import NIOCore
import ShoalCore
import ShoalWire
import Synchronization

/// Everything this peer can serve, by content id: the complete files of its
/// folder and the verified chunks of its downloads in progress. The peer
/// server asks it for chunk bytes; nothing else decides what may be read, and
/// it only ever reads files the folder scan or a download put in it.
public final class ChunkLibrary: Sendable {
    enum Source: Sendable {
        case file(SharedFolder.Entry, FileChunkReader, PreparedChunks?)
        case partial(PartialDownload)

        var manifest: Manifest {
            switch self {
            case let .file(entry, _, _): entry.manifest
            case let .partial(download): download.manifest
            }
        }
    }

    /// Why a chunk cannot be served.
    public enum Refusal: Error, Equatable, Sendable {
        case unknownContent(ContentID)
        case indexOutOfRange(index: UInt32, count: Int)
        case notYetHeld(index: UInt32)
        case readFailed(String)

        public var reply: ErrorReply {
            switch self {
            case let .unknownContent(id):
                ErrorReply(code: .unavailable, message: "this peer does not share content \(id.short)")
            case let .indexOutOfRange(index, count):
                ErrorReply(code: .badRequest, message: "chunk \(index) is out of range: the file has \(count) chunks")
            case let .notYetHeld(index):
                ErrorReply(code: .unavailable, message: "this peer does not have chunk \(index) yet")
            case let .readFailed(reason):
                ErrorReply(code: .internal, message: "reading the chunk failed: \(reason)")
            }
        }
    }

    private let sources = Mutex<[ContentID: Source]>([:])
    /// Verdicts shared by every connection's compressor.
    public let memo = CompressionMemo()
    /// Chunk frames served, and bytes on the wire for them (for statistics).
    private let counters = Mutex<(chunks: Int, rawBytes: UInt64, wireBytes: UInt64)>((0, 0, 0))

    /// Where prepared (compressed once) chunks are kept; nil: compress per transfer.
    private let cacheDirectory: String?
    private let compression: CompressionPolicy

    /// - Parameter cacheDirectory: where to keep chunks compressed once for
    ///   every transfer (``PreparedChunks``); nil compresses per transfer.
    public init(cacheDirectory: String? = nil, compression: CompressionPolicy = CompressionPolicy()) {
        self.cacheDirectory = cacheDirectory
        self.compression = compression
        if let cacheDirectory { try? FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true) }
    }

    /// Shares a complete file of the folder (preparing its chunks: blocking work).
    public func add(_ entry: SharedFolder.Entry) throws {
        let source = try prepare(entry)
        sources.withLock { $0[entry.manifest.contentID] = source }
    }

    /// Shares a file just downloaded: at once, compressing per transfer,
    /// while its chunks are prepared for the wire in the background if
    /// `prepare` (the download is done; nobody should wait for that).
    public func addDownloaded(_ entry: SharedFolder.Entry, prepare: Bool = true) throws {
        let reader = entry.reader
        sources.withLock { $0[entry.manifest.contentID] = .file(entry, reader, nil) }
        guard prepare, cacheDirectory != nil, compression.isEnabled else { return }
        Task.detached { [self] in
            guard let prepared = try? await BlockingWork.run({ try self.prepare(entry) }) else { return }
            sources.withLock { sources in
                if case let .file(current, _, nil)? = sources[entry.manifest.contentID], current == entry {
                    sources[entry.manifest.contentID] = prepared
                }
            }
        }
    }

    private func prepare(_ entry: SharedFolder.Entry) throws -> Source {
        // The descriptor the scan checked: the path may lead elsewhere by now.
        let reader = entry.reader
        guard let cacheDirectory, compression.isEnabled else { return .file(entry, reader, nil) }
        let prepared = try PreparedChunks(manifest: entry.manifest, reader: reader, directory: cacheDirectory, policy: compression)
        return .file(entry, reader, prepared)
    }

    /// Shares the verified chunks of a download in progress (unless the complete file is already shared).
    public func add(_ download: PartialDownload) {
        sources.withLock { sources in
            if case .file = sources[download.manifest.contentID] { return }
            sources[download.manifest.contentID] = .partial(download)
        }
    }

    /// Stops sharing a content.
    public func remove(_ id: ContentID) {
        _ = sources.withLock { $0.removeValue(forKey: id) }
    }

    /// Replaces the complete files shared (after a folder rescan), keeping downloads in progress.
    public func replaceFiles(with entries: [SharedFolder.Entry]) throws {
        let current = sources.withLock { $0 }
        var readers: [ContentID: Source] = [:]
        for entry in entries {
            if case let .file(existing, _, _)? = current[entry.manifest.contentID], existing == entry {
                readers[entry.manifest.contentID] = current[entry.manifest.contentID]
            } else {
                readers[entry.manifest.contentID] = try prepare(entry)
            }
        }
        sources.withLock { sources in
            sources = sources.filter { if case .partial = $0.value { readers[$0.key] == nil } else { false } }
            sources.merge(readers) { _, new in new }
        }
    }

    /// Everything shared, as the entries of a full `announce`: complete files
    /// under their names, downloads in progress with their chunk maps.
    public func announcement() -> [AnnouncedFile] {
        sources.withLock { sources in
            sources.map { id, source -> AnnouncedFile in
                switch source {
                case let .file(entry, _, _):
                    return AnnouncedFile(name: entry.name.value, contentID: id, manifest: ManifestPayload(entry.manifest))
                case let .partial(download):
                    return AnnouncedFile(name: download.name, contentID: id, manifest: ManifestPayload(download.manifest),
                                         chunks: download.have.base64)
                }
            }
        }
    }

    /// The manifest of a shared content.
    public func manifest(of id: ContentID) -> Manifest? { sources.withLock { $0[id]?.manifest } }

    /// Totals served so far: chunk frames, raw bytes, bytes on the wire.
    public var served: (chunks: Int, rawBytes: UInt64, wireBytes: UInt64) { counters.withLock { $0 } }

    /// The `chunkData` frame answering `request`: from prepared chunks, a
    /// region of a file sent through `files`; otherwise read into memory and
    /// compressed by `compressor` when that pays.
    func frame(for request: ChunkRequest, requestID: UInt32, compressor: ChunkCompressor, files: ConnectionFiles,
               allocator: ByteBufferAllocator) throws(Refusal) -> OutgoingFrame {
        guard let source = sources.withLock({ $0[request.contentID] }) else { throw .unknownContent(request.contentID) }
        let manifest = source.manifest
        let index = Int(request.index)
        guard index < manifest.chunkCount else { throw .indexOutOfRange(index: request.index, count: manifest.chunkCount) }
        let reader: FileChunkReader
        switch source {
        case let .file(_, fileReader, prepared?):
            do throws(StorageError) {
                let frame = try prepared.frame(index: index, contentID: request.contentID, requestID: requestID, file: fileReader,
                                               stored: request.stored, files: files, allocator: allocator)
                count(rawBytes: manifest.length(ofChunk: index), wireBytes: frame.wireBytes)
                return frame
            } catch {
                throw .readFailed("\(error)")
            }
        case let .file(_, fileReader, nil):
            reader = fileReader
        case let .partial(download):
            guard download.have.contains(index) else { throw .notYetHeld(index: request.index) }
            reader = download.reader
        }
        let length = manifest.length(ofChunk: index)
        var raw = allocator.buffer(capacity: length)
        do {
            let got = try raw.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { buffer in
                try reader.read(at: manifest.offset(ofChunk: index), into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]))
            }
            guard got == length else { throw Refusal.readFailed("the file is shorter than its manifest; it changed on disk") }
        } catch let refusal as Refusal {
            throw refusal
        } catch {
            throw .readFailed("\(error)")
        }
        let frame = raw.withUnsafeReadableBytes { bytes in
            ChunkData.frame(contentID: request.contentID, index: request.index, bytes: bytes, compressor: request.stored ? nil : compressor,
                            requestID: requestID, allocator: allocator)
        }
        count(rawBytes: length, wireBytes: FrameHeader.size + frame.payload.readableBytes)
        return .frame(frame)
    }

    private func count(rawBytes: Int, wireBytes: Int) {
        counters.withLock { counters in
            counters.chunks += 1
            counters.rawBytes += UInt64(rawBytes)
            counters.wireBytes += UInt64(wireBytes)
        }
    }
}
