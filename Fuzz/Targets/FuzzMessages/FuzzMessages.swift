import Foundation
import FuzzSupport
import NIOCore
import ShoalCore
import ShoalWire

/// Every message of the protocol decoded from an arbitrary payload: the first
/// input byte picks the message type (and, in its top bit, the flag that type
/// may carry); the rest is the payload (JSON for control messages, binary for
/// chunk traffic). Whatever decodes must encode again and decode to an equal
/// message; a binary one must encode to the very same bytes. Manifests and
/// chunk maps inside a message go through their own validation too, as a
/// tracker or downloader would do next.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMessages(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    var input = FuzzInput(start, count)
    let selector = input.byte()
    let type = MessageType.allCases[Int(selector & 0x7F) % MessageType.allCases.count]
    let flags: FrameFlags = selector & 0x80 != 0 ? type.allowedFlags : []
    let payload = ByteBuffer(bytes: input.rest)
    let frame = Frame(type: type, flags: flags, requestID: 7, payload: payload)

    guard let message = try? Message(frame: frame) else { return 0 }
    require(message.type == type, "a \(type) payload decoded as a \(message.type)")

    let again: Frame
    do {
        again = try message.frame(requestID: 7)
    } catch {
        // Only a message over the frame limit may fail, and a fuzz input is far smaller.
        fatalError("a decoded \(type) does not encode again: \(error)")
    }
    require(again.header.type == type, "a \(type) encodes as a \(again.header.type)")
    if type.isBinary {
        require(again.payload == payload && again.header.flags == flags, "a \(type) does not encode to the bytes it came from")
    }
    let decodedAgain: Message
    do {
        decodedAgain = try Message(frame: again)
    } catch {
        fatalError("a \(type) this build encoded does not decode: \(error)")
    }
    require(decodedAgain == message, "a \(type) changes through encode and decode: \(message) became \(decodedAgain)")

    exerciseContents(message)
    return 0
}

/// What a receiver does next with what the message carries.
private func exerciseContents(_ message: Message) {
    switch message {
    case let .announce(announce):
        for file in announce.files {
            let manifest = try? file.manifest?.manifest(expecting: file.contentID)
            if let manifest, let chunks = file.chunks { _ = chunkMap(chunks, count: manifest.chunkCount) }
            _ = try? FileName(file.name)
        }
    case let .fileDetails(details):
        for file in details.files {
            guard let manifest = try? file.manifest?.manifest(expecting: file.contentID) else { continue }
            for holder in file.holders {
                if let chunks = holder.chunks { _ = chunkMap(chunks, count: manifest.chunkCount) }
            }
        }
    default:
        break
    }
}

private func chunkMap(_ base64: String, count: Int) -> ChunkMap? {
    Data(base64Encoded: base64).flatMap { ChunkMap(count: count, bytes: $0) }
}
