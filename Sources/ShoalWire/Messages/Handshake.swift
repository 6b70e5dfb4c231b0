/// `hello`: the first frame on every connection, from the side that connected.
public struct Hello: ControlMessage {
    public static let messageType = MessageType.hello
    /// Always `"shoal"`.
    public var `protocol`: String
    /// The protocol versions the sender speaks.
    public var versions: [Int]
    /// Who is calling: `"peer"` or `"tool"` (status queries).
    public var role: String
    /// The sender's software, for logs: `"shoal 0.1.0"`.
    public var software: String

    public init(versions: [Int] = [Int(FrameHeader.currentVersion)], role: String, software: String) {
        self.protocol = "shoal"
        self.versions = versions
        self.role = role
        self.software = software
    }
}

/// `helloAck`: the answer to `hello`, naming the version both will speak.
public struct HelloAck: ControlMessage {
    public static let messageType = MessageType.helloAck
    public var version: Int
    /// `"tracker"` or `"peer"`.
    public var role: String
    public var software: String

    public init(version: Int = Int(FrameHeader.currentVersion), role: String, software: String) {
        self.version = version
        self.role = role
        self.software = software
    }
}
