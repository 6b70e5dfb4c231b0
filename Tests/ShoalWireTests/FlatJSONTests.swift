import Foundation
import NIOCore
import ShoalCore
import ShoalTestSupport
@testable import ShoalWire
import Testing

/// `list` and `details` are decoded by a fast path when their JSON is a
/// flat object of plain strings, booleans and nulls, `announce` when it is
/// plain JSON (``JSONCursor``). Whatever the bytes, ``Message/init(frame:)``
/// must give what Foundation's decoder gives: the same message, or an error.
@Suite("Fast request decoding")
struct FlatJSONTests {
    static let id = String(repeating: "ab", count: 32)

    /// Payloads the fast path takes, the ones it leaves to the ordinary
    /// decoder (escapes, non-ASCII, cursors, content ids, unknown keys,
    /// duplicate keys, wrong types) and broken ones: each decodes exactly as
    /// Foundation decodes it.
    @Test func agreesWithFoundation() throws {
        let lists = [
            #"{"token":"t"}"#, #" { "token" : "t0" , "after" : null } "#, "{\n\t\"token\":\"a b\"\r\n}",
            #"{"token":"t","after":{"name":"a","contentID":"\#(Self.id)"}}"#, #"{"token":"t\"q"}"#, #"{"token":"t\u00e9"}"#,
            #"{"token":"κ"}"#, #"{"token":"t","extra":1}"#, #"{"token":"t","extra":"x"}"#, #"{"token":"a","token":"b"}"#,
            #"{"token":null}"#, #"{"token":true}"#, #"{}"#, #"{"token":"t",}"#, #"{"token":"t"} x"#, #"{"token":"t""#,
            #"["token"]"#, "", #"{"token":"t","after":false}"#, #"{"token":"\#u{7F}"}"#, "{\"token\":\"a\u{01}\"}",
            #"{"token":"t","compact":true}"#, #"{"compact":false,"token":"t"}"#, #"{"token":"t","compact":null}"#,
            #"{"token":"t","compact":"yes"}"#, #"{"token":"t","compact":1}"#, #"{"token":"t","compact":false,"compact":true}"#,
            #"{"token":"t","compact":tru}"#,
        ]
        let details = [
            #"{"token":"t","name":"file-1.bin"}"#, #"{"token":"t","name":"f","withoutManifest":true,"holdersAfter":"bob","downloadID":"d"}"#,
            #"{"token":"t","name":null,"withoutManifest":null,"holdersAfter":null,"downloadID":null,"contentID":null,"knownMaps":null}"#,
            #"{"token":"t","contentID":"\#(Self.id)"}"#, #"{"token":"t","name":"f","knownMaps":{"bob":3}}"#,
            #"{"token":"t","name":"f","withoutManifest":"yes"}"#, #"{"token":"t","name":true}"#, #"{"token":"t","name":"a\/b"}"#,
            #"{"token":"t","name":"f","withoutManifest":false,"withoutManifest":true}"#, #"{"token":"t","name":"f","withoutManifest":tru}"#,
            #"{"token":"t","name":"f","withoutManifest":falsey}"#, #"{"token":"t","name":"f",}"#, #"{"name":"f"}"#,
        ]
        for text in lists { try expectSame(.list, text, as: ListFiles.self) }
        for text in details { try expectSame(.details, text, as: Details.self) }
    }

    /// Random flat objects (random keys of both messages, random values of
    /// every kind, random spacing and order): the same answer as Foundation's.
    @Test func randomObjectsAgreeWithFoundation() throws {
        var generator = SeededGenerator(seed: 11)
        let keys = ["token", "name", "after", "withoutManifest", "holdersAfter", "downloadID", "contentID", "knownMaps", "compact", "other"]
        let values = [#""t""#, #""file-3.bin""#, #""""#, "true", "false", "null", "7", #""a\"b""#, #""é""#, "{}", "[]", #""\#(Self.id)""#]
        let spaces = ["", " ", "\n", "\t "]
        for _ in 0..<2000 {
            var members: [String] = []
            for _ in 0..<Int.random(in: 0...5, using: &generator) {
                let key = keys.randomElement(using: &generator)!
                let value = values.randomElement(using: &generator)!
                let space = { spaces.randomElement(using: &generator)! }
                members.append(space() + "\"\(key)\"" + space() + ":" + space() + value + space())
            }
            let text = "{" + members.joined(separator: ",") + "}"
            try expectSame(.list, text, as: ListFiles.self)
            try expectSame(.details, text, as: Details.self)
        }
    }

    /// Announces as peers send them (JSONEncoder's output): the fast path
    /// takes them all, and reads what Foundation reads.
    @Test func announcesAsPeersSendThemTakeTheFastPath() throws {
        var generator = SeededGenerator(seed: 12)
        for index in 0..<200 {
            let announce = Self.randomAnnounce(&generator, index: index)
            let frame = try announce.frame(requestID: 1)
            #expect(Announce(plainFrame: frame) == announce)
            #expect(try Message(frame: frame) == .announce(announce))
        }
    }

    /// Announces with every kind of member, spacing, null and odd value, and
    /// broken ones: each decodes exactly as Foundation decodes it.
    @Test func announcesAgreeWithFoundation() throws {
        let manifest = #"{"fileSize":10,"chunkSize":262144,"digests":"\#(String(repeating: "A", count: 44))"}"#
        let file = #""name":"a.bin","contentID":"\#(Self.id)""#
        let texts = [
            #"{"token":"t","replace":true,"files":[]}"#,
            #" { "files" : [ { \#(file) , "manifest" : \#(manifest) } ] , "replace" : false , "token" : "t" } "#,
            #"{"token":"t","replace":true,"files":[{\#(file),"manifest":null,"chunks":null,"have":null,"withdrawn":null}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"chunks":"AAE=","have":[0,1,17],"withdrawn":false}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"have":[]},{\#(file),"withdrawn":true}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"have":[01]}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"have":[-1]}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"have":[1.0]}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"have":[1e2]}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"have":[99999999999999999999]}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"have":[1234567890123456]}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"manifest":{"fileSize":10,"chunkSize":4294967296,"digests":""}}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"manifest":{"fileSize":10,"chunkSize":1}}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"manifest":{"fileSize":10,"chunkSize":1,"digests":"","x":1}}]}"#,
            #"{"token":"t","replace":true,"files":[{"name":"a.bin","contentID":"xyz"}]}"#,
            #"{"token":"t","replace":true,"files":[{"name":"a.bin","contentID":"\#(Self.id.uppercased())"}]}"#,
            #"{"token":"t","replace":true,"files":[{"name":"a\/b","contentID":"\#(Self.id)"}]}"#,
            #"{"token":"t","replace":true,"files":[{"name":"é.bin","contentID":"\#(Self.id)"}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"name":"b.bin"}]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file),"other":1}]}"#,
            #"{"token":"t","replace":"yes","files":[]}"#, #"{"token":"t","replace":null,"files":[]}"#,
            #"{"token":"t","files":[]}"#, #"{"token":"t","replace":true}"#, #"{"token":"t","replace":true,"files":null}"#,
            #"{"token":"t","replace":true,"files":[],}"#, #"{"token":"t","replace":true,"files":[,]}"#,
            #"{"token":"t","replace":true,"files":[{\#(file)},]}"#, #"{"token":"t","replace":true,"files":[{\#(file)}"#,
            #"{"token":"t","replace":true,"files":{}}"#, #"{"token":"t","replace":true,"files":[]} []"#, "",
        ]
        for text in texts { try expectSame(.announce, text, as: Announce.self) }
    }

    /// Announces as peers send them, then damaged at random (a byte
    /// changed, dropped or doubled): whatever comes of it, the same answer
    /// as Foundation's.
    @Test func damagedAnnouncesAgreeWithFoundation() throws {
        var generator = SeededGenerator(seed: 13)
        let alphabet = Array(#"{}[]:,"\ 0123456789abcdefnulltrueAZ+/=é"#.utf8)
        for index in 0..<1500 {
            let announce = Self.randomAnnounce(&generator, index: index)
            var bytes = Array(WireJSON.encode(announce))
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[at] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: at)
                default: bytes.insert(bytes[at], at: at)
                }
            }
            try expectSame(.announce, String(decoding: bytes, as: UTF8.self), as: Announce.self)
        }
    }

    static func randomAnnounce(_ generator: inout SeededGenerator, index: Int) -> Announce {
        let files = (0..<Int.random(in: 0...3, using: &generator)).map { file -> AnnouncedFile in
            let chunks = Int.random(in: 1...8, using: &generator)
            let digests = (0..<chunks * 32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let contentID = ContentID(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })!
            let manifest = Bool.random(using: &generator)
                ? ManifestPayload(fileSize: UInt64(chunks) * 262_144 - 7, chunkSize: 262_144, digests: Data(digests).base64EncodedString()) : nil
            let have = Bool.random(using: &generator) ? (0..<Int.random(in: 0...4, using: &generator)).map { _ in Int.random(in: 0...70_000, using: &generator) } : nil
            return AnnouncedFile(name: "file-\(index)-\(file).bin", contentID: contentID, manifest: manifest,
                                 chunks: Bool.random(using: &generator) ? "AAEC" : nil, have: have,
                                 withdrawn: [true, false, nil].randomElement(using: &generator)!)
        }
        return Announce(token: "token-\(index)", replace: Bool.random(using: &generator), files: files)
    }

    /// Long strings are read 32 bytes at a time: whatever falls where in a
    /// block or across two (`\/` split between them, a quote, a lone or
    /// doubled backslash, a control or non-ASCII byte), the string reads as
    /// Foundation reads it, or the fast path gives up.
    @Test func longStringsAgreeWithFoundation() throws {
        var generator = SeededGenerator(seed: 12)
        let plain = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=".utf8)
        let odd: [[UInt8]] = [Array(#"\/"#.utf8), Array(#"\/"#.utf8), Array(#"\/"#.utf8), Array(#"\\"#.utf8), Array(#"\""#.utf8),
                              [UInt8(ascii: "\\")], [UInt8(ascii: "\"")], [0x01], [0xC3, 0xA9], Array(#"\u0041"#.utf8), [UInt8(ascii: "/")]]
        for _ in 0..<3000 {
            var body: [UInt8] = (0..<Int.random(in: 0...140, using: &generator)).map { _ in plain.randomElement(using: &generator)! }
            for _ in 0..<Int.random(in: 0...3, using: &generator) {
                body.insert(contentsOf: odd.randomElement(using: &generator)!, at: Int.random(in: 0...body.count, using: &generator))
            }
            let digests = String(decoding: body, as: UTF8.self)
            let text = #"{"token":"t","replace":true,"files":[{"name":"a.bin","contentID":"\#(Self.id)","manifest":{"fileSize":1,"chunkSize":262144,"digests":""#
                + digests + #""}}]}"#
            try expectSame(.announce, text, as: Announce.self)
        }
    }

    private func expectSame<M: ControlMessage>(_ type: MessageType, _ text: String, as: M.Type) throws {
        let frame = Frame(type: type, requestID: 1, payload: ByteBuffer(string: text))
        let expected = try? JSONDecoder().decode(M.self, from: Data(text.utf8))
        let decoded = try? Message(frame: frame)
        switch (decoded, expected) {
        case let (.list(got)?, want?):
            #expect(got == want as? ListFiles, "\(text)")
        case let (.details(got)?, want?):
            #expect(got == want as? Details, "\(text)")
        case let (.announce(got)?, want?):
            #expect(got == want as? Announce, "\(text)")
        case (nil, nil):
            break
        default:
            Issue.record("\(text): decoded \(String(describing: decoded)), Foundation gives \(String(describing: expected))")
        }
    }
}
