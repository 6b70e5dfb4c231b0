/// A reader of the plain JSON the fast decoders accept (``FlatJSON``,
/// `Announce`'s fast path): it walks the bytes once and gives up (nil or
/// false) on anything it is not sure of, so that the caller decodes the
/// frame the ordinary way instead, with the same value or the same error.
///
/// What it reads:
/// - strings of printable ASCII (nothing below 0x20, nothing from 0x80
///   on) whose only escape is `\/`;
/// - unsigned integers: digits only, no leading zero, at most 15 of them
///   (well inside what a `Double` holds exactly);
/// - `true`, `false`, `null`, objects and arrays of these.
struct JSONCursor {
    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Whether only white space is left.
    var atEnd: Bool {
        mutating get {
            skipSpace()
            return index == bytes.count
        }
    }

    mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    /// The next byte after white space, not consumed.
    mutating func peek() -> UInt8? {
        skipSpace()
        return index < bytes.count ? bytes[index] : nil
    }

    /// Consumes `byte` (after white space) if it comes next.
    mutating func take(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        index += 1
        return true
    }

    /// A plain string. `\/` is the one escape read here: Foundation's
    /// encoder writes every `/` so, and base64 is full of them.
    mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var slashes = 0
        // Long strings (base64 of digests) 32 bytes at a time, branch-free
        // within a block, while a block holds nothing but plain bytes and `\/`.
        while index + 33 <= bytes.count {
            let (plain, escapes) = Self.plainBlock(bytes, at: index)
            guard plain else { break }
            slashes += escapes
            index += 32
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                let text = UnsafeRawBufferPointer(rebasing: bytes[start..<index - 1])
                guard slashes > 0 else { return String(decoding: text, as: UTF8.self) }
                // Every backslash here opens a `\/`.
                return String(unsafeUninitializedCapacity: text.count - slashes) { out in
                    var written = 0
                    for byte in text where byte != UInt8(ascii: "\\") {
                        out[written] = byte
                        written += 1
                    }
                    return written
                }
            }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "/") else { return nil }
                slashes += 1
                index += 2
                continue
            }
            guard byte >= 0x20, byte < 0x80 else { return nil }
            index += 1
        }
        return nil
    }

    /// Whether the 32 bytes at `start` are printable ASCII but for `"`,
    /// with each backslash opening a `\/` (the byte after the block may be
    /// the last `/`), and how many backslashes.
    @inline(__always)
    private static func plainBlock(_ bytes: UnsafeRawBufferPointer, at start: Int) -> (Bool, Int) {
        @inline(__always) func bit(_ condition: Bool) -> UInt8 { condition ? 1 : 0 }
        var special: UInt8 = 0
        var backslashes: UInt8 = 0
        var escapes: UInt8 = 0
        for k in start..<start + 32 {
            let byte = bytes[k]
            special |= bit(byte == UInt8(ascii: "\"")) | bit(byte < 0x20) | bit(byte >= 0x80)
            backslashes &+= bit(byte == UInt8(ascii: "\\"))
            escapes &+= bit(byte == UInt8(ascii: "\\")) & bit(bytes[k + 1] == UInt8(ascii: "/"))
        }
        return (special == 0 && backslashes == escapes, Int(escapes))
    }

    /// An unsigned integer of at most 15 digits.
    mutating func unsigned() -> UInt64? {
        skipSpace()
        let start = index
        var value: UInt64 = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            value = value * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
            index += 1
            guard index - start <= 15 else { return nil }
        }
        let digits = index - start
        guard digits > 0, digits == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        // A fraction or an exponent goes the ordinary way.
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") || bytes[index] | 0x20 == UInt8(ascii: "e") { return nil }
        return value
    }

    /// `true` or `false`.
    mutating func bool() -> Bool? {
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    /// Consumes `null` if it comes next.
    mutating func null() -> Bool { literal("null") }

    private mutating func literal(_ text: StaticString) -> Bool {
        skipSpace()
        let count = text.utf8CodeUnitCount
        guard bytes.count - index >= count else { return false }
        for offset in 0..<count where bytes[index + offset] != text.utf8Start[offset] { return false }
        index += count
        return true
    }

    /// Reads an object: `member` is called with each key and must consume
    /// its value (false gives up). A key seen twice gives up as well.
    mutating func object(_ member: (inout JSONCursor, String) -> Bool) -> Bool {
        guard take(UInt8(ascii: "{")) else { return false }
        if take(UInt8(ascii: "}")) { return true }
        var seen: [String] = []
        while true {
            guard let key = string(), !seen.contains(key), take(UInt8(ascii: ":")), member(&self, key) else { return false }
            seen.append(key)
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "}"))
        }
    }

    /// Reads an array: `element` is called for each element and must consume it.
    mutating func array(_ element: (inout JSONCursor) -> Bool) -> Bool {
        guard take(UInt8(ascii: "[")) else { return false }
        if take(UInt8(ascii: "]")) { return true }
        while true {
            guard element(&self) else { return false }
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "]"))
        }
    }
}
