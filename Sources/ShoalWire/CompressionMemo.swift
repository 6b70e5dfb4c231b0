import ShoalCore
import Synchronization

/// Remembers, per chunk, that compressing it did not pay, so a seeder serving
/// the same incompressible chunk to many peers pays deflate's cost once.
///
/// Shared by all connections of a peer; bounded: when it holds ``capacity``
/// verdicts it forgets them all and starts again (a verdict costs one sample
/// to re-learn, so precision is not worth an LRU).
public final class CompressionMemo: Sendable {
    /// A chunk of a file.
    public struct Key: Hashable, Sendable {
        public var contentID: ContentID
        public var index: UInt32
        public init(contentID: ContentID, index: UInt32) {
            self.contentID = contentID
            self.index = index
        }
    }

    /// The most verdicts kept.
    public let capacity: Int
    private let incompressible: Mutex<Set<Key>>

    public init(capacity: Int = 1 << 20) {
        self.capacity = max(1, capacity)
        self.incompressible = Mutex([])
    }

    /// Whether `key` is known not to pay.
    public func isIncompressible(_ key: Key) -> Bool {
        incompressible.withLock { $0.contains(key) }
    }

    /// Records that `key` does not pay.
    public func markIncompressible(_ key: Key) {
        incompressible.withLock { set in
            if set.count >= capacity { set.removeAll(keepingCapacity: true) }
            set.insert(key)
        }
    }

    /// The number of verdicts held.
    public var count: Int { incompressible.withLock { $0.count } }
}
