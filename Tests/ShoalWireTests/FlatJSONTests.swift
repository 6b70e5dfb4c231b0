import Foundation
import NIOCore
import ShoalCore
import ShoalTestSupport
import ShoalWire
import Testing

/// `list` and `details` are decoded by a fast path when their JSON is a
/// flat object of plain strings, booleans and nulls. Whatever the bytes,
/// ``Message/init(frame:)`` must give what Foundation's decoder gives: the
/// same message, or an error.
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
        let keys = ["token", "name", "after", "withoutManifest", "holdersAfter", "downloadID", "contentID", "knownMaps", "other"]
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

    private func expectSame<M: ControlMessage>(_ type: MessageType, _ text: String, as: M.Type) throws {
        let frame = Frame(type: type, requestID: 1, payload: ByteBuffer(string: text))
        let expected = try? JSONDecoder().decode(M.self, from: Data(text.utf8))
        let decoded = try? Message(frame: frame)
        switch (decoded, expected) {
        case let (.list(got)?, want?):
            #expect(got == want as? ListFiles, "\(text)")
        case let (.details(got)?, want?):
            #expect(got == want as? Details, "\(text)")
        case (nil, nil):
            break
        default:
            Issue.record("\(text): decoded \(String(describing: decoded)), Foundation gives \(String(describing: expected))")
        }
    }
}
