/// JSON written straight into bytes, for the replies a busy tracker builds
/// most (``FileDetail/encodedAroundDownloadID()``): Foundation's encoder
/// took about 22 µs for one file's details, most of it checking every
/// character of a manifest's base64 for escapes.
///
/// The caller writes the members in the order it wants (the protocol's
/// messages use sorted keys) and calls ``member(_:)`` before each value;
/// the writer adds the commas. Strings are escaped as Foundation's encoder
/// escapes them (`/` too), so a reply reads the same byte for byte;
/// nothing else is checked, so keys must be plain text.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    /// The objects and arrays open, innermost last: whether each is an
    /// array, and whether it has a member or element yet.
    private var open: [(isArray: Bool, hasMember: Bool)] = []

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    mutating func beginObject() { begin(UInt8(ascii: "{"), isArray: false) }
    mutating func endObject() { end(UInt8(ascii: "}")) }
    mutating func beginArray() { begin(UInt8(ascii: "["), isArray: true) }
    mutating func endArray() { end(UInt8(ascii: "]")) }

    /// Starts the member `key` of the current object; its value follows.
    mutating func member(_ key: StaticString) {
        if open[open.count - 1].hasMember { bytes.append(UInt8(ascii: ",")) }
        open[open.count - 1].hasMember = true
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func string(_ text: String) {
        value()
        bytes.append(UInt8(ascii: "\""))
        appendEscaped(text)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Bytes that need no escaping (base64, hex), as a string.
    mutating func plainString(_ ascii: some Sequence<UInt8>) {
        value()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: ascii)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Base64 text (a manifest's digests, a chunk map) as a JSON string:
    /// copied as it is, `/` unescaped (JSON does not require the escape),
    /// when it holds only base64's characters, as it always does from a
    /// tracker; escaped as ``string(_:)`` escapes otherwise.
    mutating func base64(_ text: String) {
        var text = text
        let copied = text.withUTF8 { utf8 in
            guard Self.isBase64(utf8) else { return false }
            value()
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: utf8)
            bytes.append(UInt8(ascii: "\""))
            return true
        }
        if !copied { string(text) }
    }

    /// Whether every byte is one of base64's: one pass without branches, so
    /// the compiler may vectorize it, as a manifest's digests run to
    /// kilobytes (a 64-chunk manifest's entry: 26 µs before, 4-6 µs after).
    static func isBase64(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        @inline(__always) func bit(_ condition: Bool) -> UInt8 { condition ? 1 : 0 }
        var all: UInt8 = 1
        for byte in utf8 {
            all &= bit(byte &- UInt8(ascii: "A") < 26) | bit(byte &- UInt8(ascii: "a") < 26) | bit(byte &- UInt8(ascii: "0") < 10)
                | bit(byte == UInt8(ascii: "+")) | bit(byte == UInt8(ascii: "/")) | bit(byte == UInt8(ascii: "="))
        }
        return all == 1
    }

    mutating func integer(_ number: some BinaryInteger) {
        value()
        bytes.append(contentsOf: String(number).utf8)
    }

    /// A finite number as Swift prints it (the shortest form that reads
    /// back the same: valid JSON); anything else as 0, which JSON cannot carry.
    mutating func number(_ number: Double) {
        value()
        bytes.append(contentsOf: (number.isFinite ? number.description : "0").utf8)
    }

    mutating func bool(_ flag: Bool) {
        value()
        bytes.append(contentsOf: (flag ? "true" : "false").utf8)
    }

    /// The characters of `text` as a JSON string holds them, without
    /// quotes: for a caller that leaves a gap to fill in later.
    mutating func appendEscaped(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            var plainFrom = 0
            for (index, byte) in utf8.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "/") {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[plainFrom..<index]))
                plainFrom = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(byte)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[plainFrom...]))
        }
    }

    private mutating func begin(_ byte: UInt8, isArray: Bool) {
        value()
        bytes.append(byte)
        open.append((isArray, false))
    }

    private mutating func end(_ byte: UInt8) {
        bytes.append(byte)
        open.removeLast()
    }

    /// Before a value: the comma between an array's elements.
    private mutating func value() {
        guard let last = open.last, last.isArray else { return }
        if last.hasMember { bytes.append(UInt8(ascii: ",")) }
        open[open.count - 1].hasMember = true
    }
}
