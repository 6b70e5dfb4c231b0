import NIOCore

/// A fast path for decoding the requests a busy tracker gets most (`list`
/// and `details`): their JSON is one flat object of plain strings, booleans
/// and nulls, which this reads in one pass without Foundation's decoder
/// (that took 8-10 % of a loaded tracker's CPU for a 90-byte request).
///
/// It accepts only what it is sure of (``JSONCursor``): an object whose
/// keys and string values are printable ASCII (with `\/` the only escape),
/// whose values are strings, `true`, `false` or `null`, with no key twice.
/// Anything else (other escapes,
/// other characters, numbers, nested values, unknown keys, wrong types)
/// returns nil, and the caller decodes the frame the ordinary way, which
/// gives the same value or the same error as before.
enum FlatJSON {
    enum Value: Equatable {
        case string(String)
        case bool(Bool)
        case null
    }

    /// An object's members in the order they came, each key once (a
    /// request has two to five: a short array is cheaper than a dictionary,
    /// which hashed every key twice and grew twice per request).
    struct Members {
        private var members: [(key: String, value: Value)] = []

        init() {
            members.reserveCapacity(6)
        }

        var isEmpty: Bool { members.isEmpty }

        /// Adds a member (``JSONCursor/object(_:)`` has checked that its key is new).
        mutating func append(_ key: String, _ value: Value) {
            members.append((key, value))
        }

        /// The member `key`, taken out; nil when absent.
        mutating func removeValue(forKey key: String) -> Value? {
            guard let index = members.firstIndex(where: { $0.key == key }) else { return nil }
            return members.remove(at: index).value
        }
    }

    /// The object's members, or nil if the payload is not such an object.
    static func parse(_ buffer: ByteBuffer) -> Members? {
        buffer.withUnsafeReadableBytes { bytes -> Members? in
            var cursor = JSONCursor(bytes)
            var members = Members()
            let read = cursor.object { cursor, key in
                let value: Value
                switch cursor.peek() {
                case UInt8(ascii: "\""):
                    guard let text = cursor.string() else { return false }
                    value = .string(text)
                case UInt8(ascii: "t"), UInt8(ascii: "f"):
                    guard let flag = cursor.bool() else { return false }
                    value = .bool(flag)
                case UInt8(ascii: "n"):
                    guard cursor.null() else { return false }
                    value = .null
                default:
                    return false
                }
                members.append(key, value)
                return true
            }
            return read && cursor.atEnd ? members : nil
        }
    }

    /// Reads the members through `read`, which must consume each one it
    /// knows; nil if any member is left over or `read` gives up.
    static func decode<T>(_ frame: Frame, _ read: (inout Members) -> T?) -> T? {
        guard var members = parse(frame.payload), let value = read(&members), members.isEmpty else { return nil }
        return value
    }
}

extension FlatJSON.Members {
    /// The member `key` as a required string: .some(text), or nil to give up.
    mutating func take(required key: String) -> String? {
        guard case let .string(text)? = removeValue(forKey: key) else { return nil }
        return text
    }

    /// The member `key` as an optional string: .some(nil) when absent or
    /// null, .some(text), or nil to give up (another type).
    mutating func take(optional key: String) -> String?? {
        switch removeValue(forKey: key) {
        case nil, .null?: return .some(nil)
        case let .string(text)?: return .some(text)
        case .bool?: return nil
        }
    }

    /// The member `key` as an optional boolean, in the same way.
    mutating func take(optionalBool key: String) -> Bool?? {
        switch removeValue(forKey: key) {
        case nil, .null?: return .some(nil)
        case let .bool(flag)?: return .some(flag)
        case .string?: return nil
        }
    }

    /// Whether `key` is absent or null (a member the fast path leaves to the ordinary decoder otherwise).
    mutating func takeAbsent(_ key: String) -> Bool {
        switch removeValue(forKey: key) {
        case nil, .null?: return true
        default: return false
        }
    }
}

extension ListFiles {
    /// The fast path if it applies, else Foundation's decoder.
    init(fastOrOrdinary frame: Frame) throws(WireError) {
        if let fast = ListFiles(flatFrame: frame) { self = fast } else { try self.init(frame: frame) }
    }

    /// The fast path (``FlatJSON``): a `list` without a cursor.
    init?(flatFrame frame: Frame) {
        guard let value: ListFiles = FlatJSON.decode(frame, { members in
            guard let token = members.take(required: "token"),
                  case let .some(compact) = members.take(optionalBool: "compact"),
                  members.takeAbsent("after") else { return nil }
            return ListFiles(token: token, compact: compact)
        }) else { return nil }
        self = value
    }
}

extension Details {
    /// The fast path if it applies, else Foundation's decoder.
    init(fastOrOrdinary frame: Frame) throws(WireError) {
        if let fast = Details(flatFrame: frame) { self = fast } else { try self.init(frame: frame) }
    }

    /// The fast path (``FlatJSON``): a `details` by name, without `contentID` or `knownMaps`.
    init?(flatFrame frame: Frame) {
        guard let value: Details = FlatJSON.decode(frame, { members in
            guard let token = members.take(required: "token"),
                  case let .some(name) = members.take(optional: "name"),
                  case let .some(withoutManifest) = members.take(optionalBool: "withoutManifest"),
                  case let .some(holdersAfter) = members.take(optional: "holdersAfter"),
                  case let .some(downloadID) = members.take(optional: "downloadID"),
                  members.takeAbsent("contentID"), members.takeAbsent("knownMaps") else { return nil }
            return Details(token: token, name: name, withoutManifest: withoutManifest, holdersAfter: holdersAfter, downloadID: downloadID)
        }) else { return nil }
        self = value
    }
}
