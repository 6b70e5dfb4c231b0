import ShoalCore
import Testing

@Suite("Names")
struct NameTests {
    /// Ordinary names, with spaces and non-ASCII letters, are allowed.
    @Test(arguments: ["notes.txt", "meeting notes.txt", "καλημέρα.txt", "a", String(repeating: "x", count: 255)])
    func goodFileNames(name: String) throws {
        #expect(try FileName(name).value == name)
    }

    /// Path tricks, control characters and oversize names are refused.
    @Test(arguments: ["", "a/b", "../etc", "..", ".", ".hidden", "a\\b", "nul\0byte", "tab\there", "bell\u{7}",
                      "evil\u{202E}txt.exe", "zero\u{200B}width", "line\u{2028}sep", String(repeating: "x", count: 256)])
    func badFileNames(name: String) {
        #expect(throws: NameError.self) { try FileName(name) }
    }

    /// Every ASCII character within a name: refused exactly when it is a
    /// control character (U+0000 to U+001F, U+007F) or a slash. (Printable
    /// ASCII skips the per-character Unicode lookup: this pins that it
    /// decides the same.)
    @Test func asciiCharactersInsideAName() {
        for byte in UInt8(0)..<0x80 {
            let name = "a" + String(UnicodeScalar(byte)) + "b"
            let refused = byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "\\")
            #expect(((try? FileName(name)) == nil) == refused, "byte \(byte)")
        }
    }

    @Test func userNames() throws {
        #expect(try UserName("maria_k-1.2").value == "maria_k-1.2")
        for bad in ["", "a b", "ü", ".x", "-x", "a/b", String(repeating: "u", count: 33), "x\n"] {
            #expect(throws: NameError.self) { try UserName(bad) }
        }
    }

    /// Names that Swift calls equal but Linux stores as different files stay different.
    @Test func namesCompareByBytes() throws {
        let composed = try FileName("caf\u{E9}.txt")
        let decomposed = try FileName("cafe\u{301}.txt")
        #expect(composed.value == decomposed.value, "Swift's String equality is canonical")
        #expect(composed != decomposed)
        #expect(Set([composed, decomposed]).count == 2)
    }

    /// Messages name the problem.
    @Test func messagesNameTheCharacter() {
        do {
            _ = try FileName("a\0b")
        } catch {
            #expect(error.description.contains("NUL"))
        }
    }
}
