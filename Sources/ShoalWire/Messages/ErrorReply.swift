/// A machine-readable error code carried by `error` frames. Receivers must
/// accept codes they do not know (show the message).
public struct ErrorCode: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
    public var description: String { rawValue }

    /// The request could not be decoded or is not allowed at this point.
    public static let badRequest = ErrorCode(rawValue: "bad_request")
    /// No common protocol version.
    public static let unsupportedVersion = ErrorCode(rawValue: "unsupported_version")
    /// The session token is missing, unknown or expired: log in again.
    public static let notLoggedIn = ErrorCode(rawValue: "not_logged_in")
    /// Registration refused: the user name is taken.
    public static let nameTaken = ErrorCode(rawValue: "name_taken")
    /// Wrong user name or password.
    public static let badCredentials = ErrorCode(rawValue: "bad_credentials")
    /// Too many failed logins for this name: wait and retry.
    public static let tooManyAttempts = ErrorCode(rawValue: "too_many_attempts")
    /// A user or file name breaks the naming rules.
    public static let invalidName = ErrorCode(rawValue: "invalid_name")
    /// No file by that name or content id.
    public static let notFound = ErrorCode(rawValue: "not_found")
    /// A request over a size limit (too many files, too long a list).
    public static let tooLarge = ErrorCode(rawValue: "too_large")
    /// A report about a holder the reporter was not given.
    public static let notAllowed = ErrorCode(rawValue: "not_allowed")
    /// The peer does not have that chunk (or that file).
    public static let unavailable = ErrorCode(rawValue: "unavailable")
    /// The server is overloaded or shutting down: retry later.
    public static let busy = ErrorCode(rawValue: "busy")
    /// Something failed on the server side.
    public static let `internal` = ErrorCode(rawValue: "internal")
}

/// `error`: a refusal, answering the request with the same request id (0 when
/// it answers no request in particular, e.g. a broken frame before closing).
public struct ErrorReply: ControlMessage {
    public static let messageType = MessageType.error
    public var code: ErrorCode
    /// A sentence for a person: what went wrong and what to do.
    public var message: String

    public init(code: ErrorCode, message: String) {
        self.code = code
        self.message = message
    }

    /// As a ``WireError`` for the receiving side to throw.
    public var wireError: WireError { .remote(code: code.rawValue, message: message) }
}
