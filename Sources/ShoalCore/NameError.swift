/// Why a user name or a file name was refused.
public enum NameError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty(kind: String)
    case tooLong(kind: String, length: Int, limit: Int)
    case forbiddenCharacter(kind: String, name: String, character: String)
    case reserved(kind: String, name: String)

    public var description: String {
        switch self {
        case let .empty(kind):
            return "the \(kind) is empty; give a name"
        case let .tooLong(kind, length, limit):
            return "the \(kind) is \(length) bytes long, over the \(limit)-byte limit; choose a shorter one"
        case let .forbiddenCharacter(kind, name, character):
            return "the \(kind) \(name.debugDescription) contains \(character), which is not allowed; see PROTOCOL.md for the rules"
        case let .reserved(kind, name):
            return "the \(kind) \(name.debugDescription) is reserved; choose another"
        }
    }
}
