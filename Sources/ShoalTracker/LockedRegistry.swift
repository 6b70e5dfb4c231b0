import ShoalCore
import Synchronization

/// The tracker's ``TrackerRegistry`` behind a lock, shared by the ``Tracker``
/// actor and the event loops, so that a small `announce`, and a `details`
/// the cache does not have, are answered on the connection's event loop
/// (``CachedReplyHandler``) instead of hopping to a task and the actor and
/// back: three thread switches a request, which a swarm's first seconds,
/// every peer announcing at once, paid hundreds of times over.
///
/// Every change is published to ``ServedReplies`` under the same lock
/// (the generation, what `details` may show differently, the list rows it
/// touched), so the caches follow the registry change by change, in order.
///
/// What must be one step (a check and the change it allows, a view and the
/// generation it was taken at) is one call of ``read(_:)`` or ``mutate(_:)``.
/// The actor's requests that wait for the store or a password hash between
/// two steps read the registry again after the wait, as before.
final class LockedRegistry: Sendable {
    private let state: Mutex<TrackerRegistry>
    private let served: ServedReplies

    init(_ registry: TrackerRegistry, served: ServedReplies) {
        state = Mutex(registry)
        self.served = served
    }

    /// What `body` reads of the registry, in one step.
    func read<T: Sendable, E: Error>(_ body: (borrowing TrackerRegistry) throws(E) -> T) throws(E) -> T {
        try state.withLock { (registry) throws(E) -> T in try body(registry) }
    }

    /// Changes the registry in one step, and publishes what changed (also
    /// when `body` throws after changing something).
    func mutate<T: Sendable, E: Error>(_ body: (inout TrackerRegistry) throws(E) -> T) throws(E) -> T {
        try state.withLock { (registry) throws(E) -> T in
            defer {
                let touched = registry.takeTouched()
                served.publish(registry.generation, touched: touched, listRows: touched.isEmpty ? [] : registry.listRows(touching: touched))
            }
            return try body(&registry)
        }
    }

    // MARK: Single reads

    var connectedCount: Int { read { $0.connectedCount } }
    var contentCount: Int { read { $0.contentCount } }
    func peer(_ token: SessionToken) -> TrackerRegistry.Peer? { read { $0.peer(token) } }
}
