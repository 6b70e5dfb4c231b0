import Foundation

/// The JSON of control messages as they go on the wire: keys sorted, no
/// spaces. Parts of a message encoded apart (a cached row of a `fileList`
/// page, a `fileDetails` entry) use it too, so that put together they read
/// exactly as the whole message would.
public enum WireJSON {
    /// `value`'s JSON. Encoding Shoal's own value types cannot fail.
    public static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try! encoder.encode(value)
    }
}
