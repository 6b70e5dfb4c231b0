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
