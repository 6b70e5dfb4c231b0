import NIOCore
import ShoalCore
import ShoalNet
import ShoalWire

/// One chunk from one holder: request it, verify it (bounded inflate,
/// SHA-256) and write it into the partial download. Runs in its own task,
/// off the download loop, so both cores verify and write while the network
/// keeps delivering; cancelling that task cancels the request at once.
enum ChunkFetch {
    enum Outcome: Sendable {
        /// Verified and written; `wireBytes` is the frame's size on the wire.
        case received(wireBytes: Int, compressed: Bool)
        case failed(DownloadPlan.Failure)
        /// Writing failed: the download cannot go on.
        case storage(StorageError)
        /// The loop cancelled it (another copy won, or the holder was dropped).
        case cancelled
    }

    /// - Parameter stored: ask for the chunk uncompressed (the link is faster than inflating).
    /// - Parameter limit: the download budget: the chunk's wire bytes are
    ///   taken before asking, and settled against the reply's.
    static func run(chunk index: Int, connection: FramedConnection, manifest: Manifest, partial: PartialDownload,
                    stored: Bool, timeout: TimeAmount, limit: RateLimiter? = nil) async -> Outcome {
        let acquired = FrameHeader.size + ChunkData.headerSize + manifest.length(ofChunk: index)
        if let limit { do { try await limit.acquire(acquired) } catch { return .cancelled } }
        let reply: Frame
        let contentID = manifest.contentID
        do {
            reply = try await connection.requestFrame(timeout: timeout, cancel: { id in
                ChunkCancel(contentID: contentID, index: UInt32(index)).frame(requestID: id)
            }) { id in
                ChunkRequest(contentID: contentID, index: UInt32(index), stored: stored).frame(requestID: id)
            }
        } catch is CancellationError {
            return .cancelled
        } catch let NetError.wire(error) {
            return .failed(.badData(error.description))
        } catch {
            return Task.isCancelled ? .cancelled : .failed(.unresponsive("\(error)"))
        }
        limit?.settle(acquired: acquired, used: FrameHeader.size + reply.payload.readableBytes)
        if Task.isCancelled { return .cancelled }
        if reply.type == .error {
            let refusal = try? ErrorReply(frame: reply)
            if refusal?.code == .unavailable { return .failed(.unavailable) }
            return .failed(.badData("refused chunk \(index): \(refusal?.message ?? "error")"))
        }
        do {
            let data = try ChunkData(frame: reply)
            guard data.contentID == manifest.contentID, Int(data.index) == index else {
                throw WireError.unexpectedChunk(expected: "chunk \(index) of \(manifest.contentID.short)", received: "chunk \(data.index) of \(data.contentID.short)")
            }
            var borrowed: VerifyScratch?
            defer { if let borrowed { VerifyScratch.give(borrowed) } }
            let written: StorageError? = try data.withVerifiedBytes(against: manifest, scratch: {
                let scratch = VerifyScratch.take(size: Int(manifest.chunkSize))
                borrowed = scratch
                return (scratch.buffer, scratch.inflater)
            }) { bytes -> StorageError? in
                do throws(StorageError) {
                    try partial.write(chunk: index, bytes: bytes)
                    return nil
                } catch {
                    return error
                }
            }
            if let written { return .storage(written) }
            return .received(wireBytes: FrameHeader.size + reply.payload.readableBytes, compressed: data.isCompressed)
        } catch {
            return .failed(.badData("\(error)"))
        }
    }
}
