import NIOCore
import ShoalCore
import ShoalNet
import ShoalWire

/// One chunk from one holder: request it, verify the reply (bounded inflate,
/// SHA-256) and write it into the partial download.
///
/// No task per request: the request goes straight into the holder's
/// connection, and a small chunk's reply is verified and written by the
/// task that reads that connection, which then reports the outcome (a large
/// one gets a task of its own, see ``inlineLength``). At 64 KiB chunks a
/// task per chunk, and the hand-offs between it, the connection and the
/// download loop, cost as much CPU as hashing the chunk. Withdrawing the
/// request (``withdraw(chunk:requestID:connection:contentID:)``) cancels it
/// at once, on the wire too.
enum ChunkFetch {
    enum Outcome: Sendable {
        /// Verified and written; `wireBytes` is the frame's size on the wire.
        case received(wireBytes: Int, compressed: Bool)
        case failed(DownloadPlan.Failure)
        /// Writing failed: the download cannot go on.
        case storage(StorageError)
    }

    /// The bytes the reply to a request for chunk `index` takes on the wire,
    /// uncompressed: what the download budget is drawn for before asking.
    static func expectedWireBytes(chunk index: Int, manifest: Manifest) -> Int {
        FrameHeader.size + ChunkData.headerSize + manifest.length(ofChunk: index)
    }

    /// Asks `connection` for chunk `index`; `done` gets the outcome, on the
    /// task that reads the connection (see ``FramedConnection/send(timeout:_:reply:)``),
    /// unless the request is withdrawn first.
    ///
    /// - Parameter stored: ask for the chunk uncompressed (the link is faster than inflating).
    /// - Parameter limit: the download budget `acquired` bytes were taken
    ///   from before asking; settled against the reply's wire bytes.
    /// - Returns: the request's id on `connection`.
    static func start(chunk index: Int, connection: FramedConnection, manifest: Manifest, partial: PartialDownload,
                      stored: Bool, timeout: TimeAmount, limit: RateLimiter? = nil, acquired: Int = 0,
                      done: @escaping @Sendable (Outcome) -> Void) -> UInt32 {
        let contentID = manifest.contentID
        return connection.send(timeout: timeout, { id in
            ChunkRequest(contentID: contentID, index: UInt32(index), stored: stored).frame(requestID: id)
        }, reply: { result in
            if let limit, case let .success(reply) = result {
                limit.settle(acquired: acquired, used: FrameHeader.size + reply.payload.readableBytes)
            }
            guard manifest.length(ofChunk: index) > inlineLength else {
                done(outcome(of: result, chunk: index, manifest: manifest, partial: partial))
                return
            }
            Task { done(outcome(of: result, chunk: index, manifest: manifest, partial: partial)) }
        })
    }

    /// Chunks up to this size are verified and written on the task that
    /// reads the connection; larger ones in a task of their own. A task costs
    /// tens of microseconds, much for a 64 KiB chunk (about 50 us to hash) and
    /// nothing for a 4 MiB one (milliseconds), and there it lets the next
    /// chunk on the same link be verified on the other core meanwhile: with
    /// 4 MiB chunks, everything verified on the link's task made a 4 GiB
    /// download about 13 % slower (575 against 659 MB/s, means of 10
    /// alternating runs).
    static let inlineLength = 128 * 1024

    /// Withdraws the request for chunk `index` made as `requestID`, with a
    /// `chunkCancel` so the holder does not send it; whether it was still awaited.
    @discardableResult
    static func withdraw(chunk index: Int, requestID: UInt32, connection: FramedConnection, contentID: ContentID) -> Bool {
        connection.withdraw(requestID, cancel: ChunkCancel(contentID: contentID, index: UInt32(index)).frame(requestID: requestID))
    }

    /// What a reply (or the request's failure) comes to: the chunk verified
    /// and written, a failure of the holder, or a failure to write.
    static func outcome(of result: Result<Frame, any Error>, chunk index: Int, manifest: Manifest, partial: PartialDownload) -> Outcome {
        let reply: Frame
        switch result {
        case let .success(frame):
            reply = frame
        case let .failure(NetError.wire(error)):
            return .failed(.badData(error.description))
        case let .failure(error):
            return .failed(.unresponsive("\(error)"))
        }
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
