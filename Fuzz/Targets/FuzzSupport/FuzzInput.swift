/// The fuzzer's bytes, read from the front: a few to steer the run (a read
/// size, a type, a declared length), the rest as the input under test.
/// Reading past the end yields zeros, so every input is usable.
public struct FuzzInput {
    public private(set) var rest: UnsafeRawBufferPointer

    public init(_ start: UnsafeRawPointer?, _ count: Int) {
        rest = UnsafeRawBufferPointer(start: start, count: count)
    }

    public mutating func byte() -> UInt8 {
        guard let first = rest.first else { return 0 }
        rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst())
        return first
    }

    /// A big-endian integer of `count` bytes (at most 8).
    public mutating func integer(bytes count: Int) -> UInt64 {
        (0..<count).reduce(0) { value, _ in value << 8 | UInt64(byte()) }
    }
}

/// Stops the run with `message` when an invariant fails: libFuzzer records
/// the input that did it. (Not `assert`, which release builds drop.)
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("fuzz invariant failed: \(message())", file: file, line: line) }
}
