/// Any message of the protocol, decoded from a frame by its type byte.
public enum Message: Sendable, Equatable {
    case hello(Hello)
    case helloAck(HelloAck)
    case error(ErrorReply)
    case checkActive(CheckActive)
    case active(Active)
    case register(Register)
    case registered(Registered)
    case login(Login)
    case loggedIn(LoggedIn)
    case logout(Logout)
    case loggedOut(LoggedOut)
    case announce(Announce)
    case announced(Announced)
    case list(ListFiles)
    case fileList(FileList)
    case details(Details)
    case fileDetails(FileDetails)
    case report(Report)
    case reported(Reported)
    case status(StatusRequest)
    case trackerStatus(TrackerStatus)
    case manifest(ManifestRequest)
    case manifestPart(ManifestPart)
    case chunkRequest(ChunkRequest)
    case chunkCancel(ChunkCancel)
    case chunkData(ChunkData)

    /// Decodes `frame`'s payload as the message its type names.
    public init(frame: Frame) throws(WireError) {
        switch frame.type {
        case .hello: self = .hello(try Hello(frame: frame))
        case .helloAck: self = .helloAck(try HelloAck(frame: frame))
        case .error: self = .error(try ErrorReply(frame: frame))
        case .checkActive: self = .checkActive(try CheckActive(frame: frame))
        case .active: self = .active(try Active(frame: frame))
        case .register: self = .register(try Register(frame: frame))
        case .registered: self = .registered(try Registered(frame: frame))
        case .login: self = .login(try Login(frame: frame))
        case .loggedIn: self = .loggedIn(try LoggedIn(frame: frame))
        case .logout: self = .logout(try Logout(frame: frame))
        case .loggedOut: self = .loggedOut(try LoggedOut(frame: frame))
        // The costliest request to decode, and the two a busy tracker gets most:
        // fast paths when their JSON is plain (``JSONCursor``).
        case .announce: self = .announce(try Announce(fastOrOrdinary: frame))
        case .announced: self = .announced(try Announced(frame: frame))
        case .list: self = .list(try ListFiles(fastOrOrdinary: frame))
        case .fileList: self = .fileList(try FileList(frame: frame))
        case .details: self = .details(try Details(fastOrOrdinary: frame))
        case .fileDetails: self = .fileDetails(try FileDetails(frame: frame))
        case .report: self = .report(try Report(frame: frame))
        case .reported: self = .reported(try Reported(frame: frame))
        case .status: self = .status(try StatusRequest(frame: frame))
        case .trackerStatus: self = .trackerStatus(try TrackerStatus(frame: frame))
        case .manifest: self = .manifest(try ManifestRequest(frame: frame))
        case .manifestPart: self = .manifestPart(try ManifestPart(frame: frame))
        case .chunkRequest: self = .chunkRequest(try ChunkRequest(frame: frame))
        case .chunkCancel: self = .chunkCancel(try ChunkCancel(frame: frame))
        case .chunkData: self = .chunkData(try ChunkData(frame: frame))
        }
    }

    /// The frame type that carries this message.
    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .helloAck: .helloAck
        case .error: .error
        case .checkActive: .checkActive
        case .active: .active
        case .register: .register
        case .registered: .registered
        case .login: .login
        case .loggedIn: .loggedIn
        case .logout: .logout
        case .loggedOut: .loggedOut
        case .announce: .announce
        case .announced: .announced
        case .list: .list
        case .fileList: .fileList
        case .details: .details
        case .fileDetails: .fileDetails
        case .report: .report
        case .reported: .reported
        case .status: .status
        case .trackerStatus: .trackerStatus
        case .manifest: .manifest
        case .manifestPart: .manifestPart
        case .chunkRequest: .chunkRequest
        case .chunkCancel: .chunkCancel
        case .chunkData: .chunkData
        }
    }

    /// The message in a frame with `requestID`; throws if it does not fit in one.
    public func frame(requestID: UInt32) throws(WireError) -> Frame {
        switch self {
        case let .hello(m): try m.frame(requestID: requestID)
        case let .helloAck(m): try m.frame(requestID: requestID)
        case let .error(m): try m.frame(requestID: requestID)
        case let .checkActive(m): try m.frame(requestID: requestID)
        case let .active(m): try m.frame(requestID: requestID)
        case let .register(m): try m.frame(requestID: requestID)
        case let .registered(m): try m.frame(requestID: requestID)
        case let .login(m): try m.frame(requestID: requestID)
        case let .loggedIn(m): try m.frame(requestID: requestID)
        case let .logout(m): try m.frame(requestID: requestID)
        case let .loggedOut(m): try m.frame(requestID: requestID)
        case let .announce(m): try m.frame(requestID: requestID)
        case let .announced(m): try m.frame(requestID: requestID)
        case let .list(m): try m.frame(requestID: requestID)
        case let .fileList(m): try m.frame(requestID: requestID)
        case let .details(m): try m.frame(requestID: requestID)
        case let .fileDetails(m): try m.frame(requestID: requestID)
        case let .report(m): try m.frame(requestID: requestID)
        case let .reported(m): try m.frame(requestID: requestID)
        case let .status(m): try m.frame(requestID: requestID)
        case let .trackerStatus(m): try m.frame(requestID: requestID)
        case let .manifest(m): try m.frame(requestID: requestID)
        case let .manifestPart(m): try m.frame(requestID: requestID)
        case let .chunkRequest(m): m.frame(requestID: requestID)
        case let .chunkCancel(m): m.frame(requestID: requestID)
        case let .chunkData(m): m.frame(requestID: requestID)
        }
    }
}
