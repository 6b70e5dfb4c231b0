import ShoalCore
import ShoalWire

/// Why the tracker refused a request. Each maps to an `error` reply whose
/// code a client can act on and whose message a person can read.
public enum TrackerError: Error, Equatable, Sendable, CustomStringConvertible {
    case nameTaken(String)
    case invalidName(NameError)
    case badCredentials
    case tooManyAttempts(user: String, retryAfterSeconds: Int)
    case tooManyRegistrations(retryAfterSeconds: Int)
    case notLoggedIn
    case badRequest(String)
    case notFound(String)
    case tooLarge(String)
    case notAllowed(String)
    case storage(String)

    public var description: String {
        switch self {
        case let .nameTaken(name): "the user name \(name.debugDescription) is taken; choose another"
        case let .invalidName(error): error.description
        case .badCredentials: "wrong user name or password"
        case let .tooManyAttempts(user, seconds): "too many failed logins for \(user.debugDescription); wait \(seconds) s and try again"
        case let .tooManyRegistrations(seconds): "too many accounts were registered from your address lately; wait \(seconds) s and try again"
        case .notLoggedIn: "this request needs a session: log in first (or again, if the tracker restarted)"
        case let .badRequest(reason): reason
        case let .notFound(what): "\(what) is not shared by any connected peer; list the files to see what is available"
        case let .tooLarge(reason): reason
        case let .notAllowed(reason): reason
        case let .storage(reason): "the tracker's database failed (\(reason)); try again later"
        }
    }

    /// The `error` reply for this refusal.
    public var reply: ErrorReply {
        let code: ErrorCode = switch self {
        case .nameTaken: .nameTaken
        case .invalidName: .invalidName
        case .badCredentials: .badCredentials
        case .tooManyAttempts, .tooManyRegistrations: .tooManyAttempts
        case .notLoggedIn: .notLoggedIn
        case .badRequest: .badRequest
        case .notFound: .notFound
        case .tooLarge: .tooLarge
        case .notAllowed: .notAllowed
        case .storage: .internal
        }
        return ErrorReply(code: code, message: description)
    }
}
