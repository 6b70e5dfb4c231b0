/// `checkActive`: "are you there?" The tracker sends it to quiet peers, and a
/// downloader to time a holder's response. Answered by `active`.
public struct CheckActive: ControlMessage {
    public static let messageType = MessageType.checkActive
    /// Echoed back, so the asker can match and time the answer.
    public var nonce: UInt32
    public init(nonce: UInt32) { self.nonce = nonce }
}

/// `active`: the answer to `checkActive`.
public struct Active: ControlMessage {
    public static let messageType = MessageType.active
    public var nonce: UInt32
    public init(nonce: UInt32) { self.nonce = nonce }
}
