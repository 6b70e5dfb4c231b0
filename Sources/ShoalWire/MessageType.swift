/// The message type byte of a frame header. Values are fixed by PROTOCOL.md.
public enum MessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    // Any connection.
    case hello = 0x01
    case helloAck = 0x02
    case error = 0x03
    case checkActive = 0x04
    case active = 0x05

    // Peer -> tracker requests, and the tracker's replies.
    case register = 0x10
    case registered = 0x11
    case login = 0x12
    case loggedIn = 0x13
    case logout = 0x14
    case loggedOut = 0x15
    case announce = 0x16
    case announced = 0x17
    case list = 0x18
    case fileList = 0x19
    case details = 0x1A
    case fileDetails = 0x1B
    case report = 0x1C
    case reported = 0x1D
    case status = 0x1E
    case trackerStatus = 0x1F
    case manifest = 0x20
    case manifestPart = 0x21

    // Peer -> peer.
    case chunkRequest = 0x30
    case chunkData = 0x31
    case chunkCancel = 0x32

    /// The lower-case name used in PROTOCOL.md and in logs.
    public var description: String {
        switch self {
        case .hello: "hello"
        case .helloAck: "helloAck"
        case .error: "error"
        case .checkActive: "checkActive"
        case .active: "active"
        case .register: "register"
        case .registered: "registered"
        case .login: "login"
        case .loggedIn: "loggedIn"
        case .logout: "logout"
        case .loggedOut: "loggedOut"
        case .announce: "announce"
        case .announced: "announced"
        case .list: "list"
        case .fileList: "fileList"
        case .details: "details"
        case .fileDetails: "fileDetails"
        case .report: "report"
        case .reported: "reported"
        case .status: "status"
        case .trackerStatus: "trackerStatus"
        case .manifest: "manifest"
        case .manifestPart: "manifestPart"
        case .chunkRequest: "chunkRequest"
        case .chunkData: "chunkData"
        case .chunkCancel: "chunkCancel"
        }
    }

    /// Whether the payload is binary (chunk traffic) rather than JSON.
    public var isBinary: Bool { self == .chunkRequest || self == .chunkData || self == .chunkCancel }

    /// The flags a frame of this type may carry.
    public var allowedFlags: FrameFlags {
        switch self {
        case .chunkData: [.compressed]
        case .chunkRequest: [.stored]
        default: []
        }
    }
}
