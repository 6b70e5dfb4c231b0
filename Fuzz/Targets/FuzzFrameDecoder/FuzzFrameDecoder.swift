import FuzzSupport
import NIOCore
import ShoalWire

/// The frame decoder on an arbitrary byte stream, read two ways: all at once,
/// and in reads of a size the first input byte picks (1 to 256 bytes, so
/// headers and payloads split everywhere). Both must give the same frames and
/// the same error, and a payload being assembled must never hold more than
/// the bytes that came in (or the preallocation limit) in memory. In some
/// runs the decoder awaits only even request ids, as a client awaits its
/// replies: no other frame may come out. Every frame is then decoded as the
/// message its type names.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrameDecoder(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let step = Int(input.byte()) + 1
    let steering = input.byte()
    // A small limit sometimes, so the limit check runs too.
    let limit = steering & 1 == 0 ? FrameHeader.maximumPayloadLength : 96 * 1024
    let preallocation = steering & 2 == 0 ? FrameDecoder.assemblyThreshold : 1 << 20
    var accepts: (@Sendable (FrameHeader) -> Bool)? = nil
    if steering & 4 != 0 {
        accepts = { header in header.requestID & 1 == 0 }
    }
    let stream = input.rest

    let whole = decodeStream(stream, readSize: max(stream.count, 1), limit: limit, preallocation: preallocation, accepts: accepts)
    let split = decodeStream(stream, readSize: step, limit: limit, preallocation: preallocation, accepts: accepts)
    require(whole.frames == split.frames, "\(whole.frames.count) frames read whole, \(split.frames.count) read \(step) bytes at a time")
    require(whole.error == split.error, "error read whole: \(String(describing: whole.error)); read in \(step)-byte steps: \(String(describing: split.error))")

    for frame in whole.frames {
        require(accepts?(frame.header) ?? true, "a frame not awaited came out (request id \(frame.requestID))")
        _ = try? Message(frame: frame)
    }
    return 0
}

private struct Outcome {
    var frames: [Frame] = []
    var error: WireError?
}

/// Feeds `stream` to a decoder `readSize` bytes at a time, as a channel's
/// cumulation buffer would, then ends the stream.
private func decodeStream(_ stream: UnsafeRawBufferPointer, readSize: Int, limit: Int, preallocation: Int,
                          accepts: (@Sendable (FrameHeader) -> Bool)?) -> Outcome {
    var decoder = FrameDecoder(maximumPayloadLength: limit, preallocationLimit: preallocation, accepts: accepts)
    var outcome = Outcome()
    var cumulation = ByteBuffer()
    var fed = 0
    do {
        while fed < stream.count {
            let end = min(fed + readSize, stream.count)
            cumulation.writeBytes(UnsafeRawBufferPointer(rebasing: stream[fed..<end]))
            fed = end
            while let frame = try decoder.decodeFrame(&cumulation) {
                outcome.frames.append(frame)
            }
            // What a half-read frame holds is bounded by what came in.
            require(
                decoder.reservedBytes <= max(preallocation, fed) * 2,
                "\(decoder.reservedBytes) bytes reserved after \(fed) bytes in (preallocation limit \(preallocation))"
            )
            cumulation.discardReadBytes()
        }
        while let frame = try decoder.decodeLast(buffer: &cumulation, seenEOF: true) {
            outcome.frames.append(frame)
        }
    } catch let error as WireError {
        outcome.error = error
    } catch {
        fatalError("the frame decoder threw a \(type(of: error)), not a WireError: \(error)")
    }
    return outcome
}
