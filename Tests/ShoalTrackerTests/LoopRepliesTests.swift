import Foundation
import NIOCore
import NIOPosix
import ShoalCore
import ShoalNet
import ShoalTestSupport
import ShoalWire
import Synchronization
import Testing
@testable import ShoalTracker

/// Requests answered on the event loops (``LoopReplyHandler``): `list` and
/// `details` from the cache, `announce`, `manifest` and cache misses from
/// the actor on its own loop; never ahead of an earlier request of the same
/// connection, never for a session that has ended, and with download ids
/// that reports honour like any other.
@Suite struct LoopRepliesTests {
    /// A list pipelined right behind an announce, with the list already
    /// cached, is answered after the announce and shows the announced file.
    @Test func aPipelinedListSeesTheAnnounceBeforeIt() async throws {
        let tracker = try await TestTracker.start()
        let manifest = sampleManifest(41)
        let replies = try await pipelined(to: tracker, as: "nora") { token in
            let file = AnnouncedFile(name: "piped.bin", contentID: manifest.contentID, manifest: ManifestPayload(manifest))
            return [try Announce(token: token, replace: true, files: [file]).frame(requestID: 5), try ListFiles(token: token).frame(requestID: 6)]
        }
        guard replies.count == 2, case .announced = replies[0].message else { throw TestFailure("the announce was not answered first: \(replies)") }
        guard case let .fileList(list) = replies[1].message else { throw TestFailure("no list after the announce: \(replies)") }
        #expect(list.files.map(\.name) == ["piped.bin"])
        await tracker.stopAndRemove()
    }

    /// Lists and details that wait behind announces (answered from the
    /// cache once the announce before them is): every reply in request
    /// order, each showing every announce before it and none after.
    @Test func requestsWaitingBehindAnnouncesSeeExactlyTheAnnouncesBeforeThem() async throws {
        let tracker = try await TestTracker.start()
        let first = sampleManifest(45), second = sampleManifest(46)
        let replies = try await pipelined(to: tracker, as: "nils") { token in
            func file(_ name: String, _ manifest: Manifest) -> AnnouncedFile {
                AnnouncedFile(name: name, contentID: manifest.contentID, manifest: ManifestPayload(manifest))
            }
            return [
                try Announce(token: token, replace: false, files: [file("one.bin", first)]).frame(requestID: 5),
                try ListFiles(token: token).frame(requestID: 6),
                try Details(token: token, name: "one.bin").frame(requestID: 7),
                try ListFiles(token: token).frame(requestID: 8),
                try Announce(token: token, replace: false, files: [file("two.bin", second)]).frame(requestID: 9),
                try ListFiles(token: token).frame(requestID: 10),
                try Details(token: token, name: "two.bin").frame(requestID: 11),
                try Details(token: token, name: "one.bin").frame(requestID: 12),
                try ListFiles(token: token).frame(requestID: 13),
            ]
        }
        #expect(replies.map(\.id) == Array(5...13))
        func names(_ message: Message) -> [String]? {
            if case let .fileList(list) = message { return list.files.map(\.name) }
            return nil
        }
        func detailed(_ message: Message) -> [ContentID]? {
            if case let .fileDetails(details) = message { return details.files.map(\.contentID) }
            return nil
        }
        guard replies.count == 9 else { throw TestFailure("\(replies.count) replies to 9 requests") }
        #expect(names(replies[1].message) == ["one.bin"])
        #expect(detailed(replies[2].message) == [first.contentID])
        #expect(names(replies[3].message) == ["one.bin"])
        #expect(names(replies[5].message) == ["one.bin", "two.bin"])
        #expect(detailed(replies[6].message) == [second.contentID])
        #expect(detailed(replies[7].message) == [first.contentID])
        #expect(names(replies[8].message) == ["one.bin", "two.bin"])
        await tracker.stopAndRemove()
    }

    /// The same pipelined requests on eight connections at once, so that
    /// some are served by the actor's own event loop (answered there and
    /// then) and some by another (a hop to it and back; the connections
    /// take the group's loops in turn): on each, every reply in request
    /// order and showing what came before it, a large announce (parsed and
    /// applied by the connection's task) included.
    @Test func pipelinedRequestsOnEveryLoopAreAnsweredInOrder() async throws {
        let tracker = try await TestTracker.start()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let small = sampleManifest(UInt8(60 + index), chunks: 4)
                    // Over 64 KiB of JSON: the announce goes through the task.
                    let large = sampleManifest(UInt8(80 + index), chunks: 3000)
                    let replies = try await pipelined(to: tracker, as: "loop\(index)") { token in
                        [
                            try Announce(token: token, replace: true, files: [
                                AnnouncedFile(name: "small-\(index).bin", contentID: small.contentID, manifest: ManifestPayload(small)),
                            ]).frame(requestID: 5),
                            try Details(token: token, name: "small-\(index).bin").frame(requestID: 6),
                            try ManifestRequest(token: token, contentID: small.contentID, from: 0).frame(requestID: 7),
                            try Announce(token: token, replace: false, files: [
                                AnnouncedFile(name: "large-\(index).bin", contentID: large.contentID, manifest: ManifestPayload(large)),
                            ]).frame(requestID: 8),
                            try Details(token: token, name: "large-\(index).bin").frame(requestID: 9),
                            try ListFiles(token: token).frame(requestID: 10),
                            try Announce(token: "not-a-session", replace: true, files: []).frame(requestID: 11),
                            try ManifestRequest(token: token, contentID: large.contentID, from: 2990).frame(requestID: 12),
                        ]
                    }
                    #expect(replies.map(\.id) == Array(5...12))
                    guard replies.count == 8 else { throw TestFailure("\(replies.count) replies to 8 requests") }
                    guard case let .announced(first) = replies[0].message, first.files == 1 else { throw TestFailure("announce: \(replies[0])") }
                    guard case let .fileDetails(smallDetails) = replies[1].message else { throw TestFailure("details: \(replies[1])") }
                    #expect(smallDetails.files.map(\.contentID) == [small.contentID])
                    guard case let .manifestPart(part) = replies[2].message else { throw TestFailure("manifest: \(replies[2])") }
                    #expect(part.contentID == small.contentID && part.from == 0)
                    guard case let .announced(second) = replies[3].message, second.files == 2 else { throw TestFailure("large announce: \(replies[3])") }
                    guard case let .fileDetails(largeDetails) = replies[4].message else { throw TestFailure("details: \(replies[4])") }
                    #expect(largeDetails.files.map(\.contentID) == [large.contentID])
                    guard case let .fileList(list) = replies[5].message else { throw TestFailure("list: \(replies[5])") }
                    #expect(Set(list.files.map(\.name)).isSuperset(of: ["small-\(index).bin", "large-\(index).bin"]))
                    guard case let .error(refusal) = replies[6].message else { throw TestFailure("a wrong token was not refused: \(replies[6])") }
                    #expect(refusal.code == .notLoggedIn)
                    guard case let .manifestPart(tail) = replies[7].message else { throw TestFailure("manifest: \(replies[7])") }
                    #expect(tail.contentID == large.contentID && tail.from == 2990)
                }
            }
            try await group.waitForAll()
        }
        await tracker.stopAndRemove()
    }

    /// A graceful drain waits for a request on its hop to the actor's loop.
    /// With that loop held busy, eight logged-in connections send an
    /// announce each; those served by another loop have theirs on the hop
    /// (read, parsed, queued behind the busy loop) when the drain begins.
    /// Every connection the drain counted as busy gets its reply before its
    /// connection closes, and only those: the others' announces, read after
    /// the drain began, are dropped, as any request is then.
    ///
    /// The tracker runs on loops of its own: holding one of the shared
    /// loops would stall every other test's connections on it.
    @Test func aDrainWaitsForRequestsOnTheirHop() async throws {
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let tracker = try await TestTracker.start(group: loops)
        let ready = AsyncStream.makeStream(of: Void.self)
        let go = Gate()
        let manifests = (0..<8).map { sampleManifest(UInt8(100 + $0), chunks: 4) }
        // The clients' own loop, neither of the tracker's.
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Registered first, and those connections gone: the eight sessions'
        // connections then take the tracker's two loops in turn, four each.
        let setup = try await tracker.connect()
        for index in 0..<8 { try await setup.register("drain\(index)", "secret-of-drain\(index)") }
        setup.close()
        let loop = tracker.server.tracker.loop
        for _ in 0..<1000 where tracker.server.connections.census(besides: loop).open != 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        let counted = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<8 {
                group.addTask {
                    // Ready once logged in, or failed: nobody waits for a client that is gone.
                    let readied = Atomic<Bool>(false)
                    defer { if !readied.exchange(true, ordering: .relaxed) { ready.continuation.yield() } }
                    return try await session(to: tracker, as: "drain\(index)", group: clients, registered: true) { token, next, outbound in
                        readied.store(true, ordering: .relaxed)
                        ready.continuation.yield()
                        await go.wait()
                        let file = AnnouncedFile(name: "drain-\(index).bin", contentID: manifests[index].contentID,
                                                 manifest: ManifestPayload(manifests[index]))
                        try await outbound.write(try Announce(token: token, replace: true, files: [file]).frame(requestID: 5))
                        var announced = 0
                        while let frame = try await next() {
                            if case .announced = try Message(frame: frame) { announced += 1 }
                        }
                        return announced
                    }
                }
            }
            var arrived = 0
            for await _ in ready.stream {
                arrived += 1
                if arrived == 8 { break }
            }
            // The actor's loop is held busy from before any announce is sent
            // until the drain has begun (10 s at most), so none can be answered before it.
            let holding = Atomic<Bool>(false)
            let drained = Atomic<Bool>(false)
            loop.execute {
                holding.store(true, ordering: .releasing)
                for _ in 0..<10_000 where !drained.load(ordering: .acquiring) { usleep(1000) }
            }
            for _ in 0..<1000 where !holding.load(ordering: .acquiring) {
                try await Task.sleep(for: .milliseconds(1))
            }
            go.open()
            // Until every connection served by another loop has its announce on the hop (10 s at most).
            var census = tracker.server.connections.census(besides: loop)
            for _ in 0..<1000 where census.busy < census.elsewhere {
                try await Task.sleep(for: .milliseconds(10))
                census = tracker.server.connections.census(besides: loop)
            }
            let busy = tracker.server.drain()
            drained.store(true, ordering: .releasing)
            #expect(census.open == 8 && census.elsewhere == 4, "\(census)")
            #expect(busy == census.elsewhere, "\(census.elsewhere) connections are on another loop than the actor's, \(busy) were busy")
            var replies = 0
            for try await count in group { replies += count }
            return (busy, replies)
        }
        #expect(counted.1 == counted.0, "\(counted.0) connections were busy when the drain began, \(counted.1) announces were answered")
        try await clients.shutdownGracefully()
        await tracker.stopAndRemove()
        try await loops.shutdownGracefully()
    }

    /// Registers `user`, connects on a raw channel, logs in, and runs `body`
    /// with the session's token, the next frame read (nil once the tracker
    /// has closed the connection) and the channel's writer.
    private func session<T: Sendable>(
        to tracker: TestTracker, as user: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        registered: Bool = false,
        _ body: (String, () async throws -> Frame?, NIOAsyncChannelOutboundWriter<OutgoingFrame>) async throws -> T
    ) async throws -> T {
        if !registered {
            let setup = try await tracker.connect()
            try await setup.register(user, "secret-of-\(user)")
            setup.close()
        }

        let channel = try await ClientBootstrap(group: group)
            .connect(host: "127.0.0.1", port: tracker.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try tracker.security.configure(channel, remote: "test tracker", timeout: .milliseconds(30_000))
                    return try Framing.configure(channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            func next() async throws -> Frame? { try await iterator.next() }
            func expected() async throws -> Frame {
                guard let frame = try await next() else { throw NetError.connectionClosed(peer: "test tracker") }
                return frame
            }
            var handshake = HandshakeStateMachine(role: .initiator, localRole: "peer", software: ShoalVersion.software)
            guard case let .send(hello) = handshake.start() else { throw TestFailure("no hello to send") }
            try await outbound.write(try hello.frame(requestID: 1))
            guard case .established = handshake.receive(try Message(frame: try await expected())) else { throw TestFailure("the handshake failed") }
            try await outbound.write(try Login(user: user, password: "secret-of-\(user)", port: 9000).frame(requestID: 2))
            guard case let .loggedIn(session) = try Message(frame: try await expected()) else { throw TestFailure("login failed") }
            return try await body(session.token, next, outbound)
        }
    }

    /// As ``session(to:as:_:)``, then asks `list` twice (the second
    /// answered from the cache), writes the frames `requests` makes in one
    /// write and returns the replies to them, in the order they came, with
    /// their request ids.
    private func pipelined(to tracker: TestTracker, as user: String,
                           _ requests: @Sendable (String) throws -> [Frame]) async throws -> [(id: UInt32, message: Message)] {
        try await session(to: tracker, as: user) { token, next, outbound in
            func expected() async throws -> Frame {
                guard let frame = try await next() else { throw NetError.connectionClosed(peer: "test tracker") }
                return frame
            }
            for id: UInt32 in [3, 4] {
                try await outbound.write(try ListFiles(token: token).frame(requestID: id))
                guard case .fileList = try Message(frame: try await expected()) else { throw TestFailure("no list") }
            }
            let frames = try requests(token)
            try await outbound.write(contentsOf: frames.map { OutgoingFrame.frame($0) })
            var replies: [(id: UInt32, message: Message)] = []
            for _ in frames {
                let frame = try await expected()
                replies.append((frame.requestID, try Message(frame: frame)))
            }
            return replies
        }
    }

    /// After a logout, the old token gets nothing from the cache.
    @Test func aLoggedOutTokenIsRefusedThoughItsListIsCached() async throws {
        let tracker = try await TestTracker.start()
        let connection = try await tracker.connect()
        let token = try await connection.signUp("omar")
        try await connection.announce(token, [("kept.bin", sampleManifest(42))])
        _ = try await connection.list(token)
        #expect(try await connection.list(token).map(\.name) == ["kept.bin"])
        _ = try await connection.request(.logout(Logout(token: token)))
        // Someone else fills the cache after the logout.
        let other = try await tracker.connect()
        let otherToken = try await other.signUp("olga")
        try await other.announce(otherToken, [("other.bin", sampleManifest(44))])
        _ = try await other.list(otherToken)
        #expect(try await other.list(otherToken).map(\.name) == ["other.bin"])
        let code = await refusalCode { _ = try await connection.list(token) }
        #expect(code == "not_logged_in")
        let detailsCode = await refusalCode { _ = try await connection.details(token, name: "other.bin") }
        #expect(detailsCode == "not_logged_in")
        connection.close()
        other.close()
        await tracker.stopAndRemove()
    }

    /// `details` answered from the cache hands out download ids of their
    /// own, bound like any other: a report with one is taken, once.
    @Test func aCachedDetailsGrantIsHonouredByReport() async throws {
        let tracker = try await TestTracker.start()
        let holder = try await tracker.connect()
        let holderToken = try await holder.signUp("petra")
        let manifest = sampleManifest(43)
        try await holder.announce(holderToken, [("shared.bin", manifest)])
        let asker = try await tracker.connect()
        let token = try await asker.signUp("quinn")
        let first = try await asker.details(token, name: "shared.bin")
        let second = try await asker.details(token, name: "shared.bin")
        let firstID = try #require(first.first?.downloadID)
        let secondID = try #require(second.first?.downloadID)
        #expect(firstID != secondID)
        #expect(secondID.count == 64 && secondID.allSatisfy(\.isHexDigit))
        #expect(second.first?.holders.map(\.user) == ["petra"])
        let reply = try await asker.request(.report(Report(token: token, contentID: manifest.contentID, holder: "petra",
                                                           outcome: .success, bytes: 1000, downloadID: secondID)))
        guard case let .reported(reported) = reply else { throw TestFailure("no reported reply") }
        #expect(reported.countDownloads == 1)
        // Another account cannot use that id.
        let other = try await tracker.connect()
        let otherToken = try await other.signUp("rosa")
        let code = await refusalCode {
            _ = try await other.request(.report(Report(token: otherToken, contentID: manifest.contentID, holder: "petra",
                                                       outcome: .failure, bytes: 0, downloadID: secondID)))
        }
        #expect(code == "not_allowed")
        for connection in [holder, asker, other] { connection.close() }
        await tracker.stopAndRemove()
    }
}

/// Opened once; everyone waiting on it goes on then.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The `details` cache as a value: an entry goes when one of its contents
/// or its name is touched, and only then; the whole stays bounded.
@Suite struct DetailsCacheTests {
    let x = sampleManifest(51).contentID, y = sampleManifest(52).contentID

    func entry(_ contents: [ContentID], bytes: Int = 100) -> DetailsCache.Entry {
        DetailsCache.Entry(parts: contents.map { DetailsCache.Part(contentID: $0, fileSize: 1, holders: ["h"], head: Array(repeating: 0x61, count: bytes), tail: [0x7d]) },
                           moreContents: nil, holderUsers: ["h"])
    }

    func key(name: String? = nil, _ content: ContentID? = nil) throws -> DetailsCache.Key {
        DetailsCache.Key(name: try name.map { try FileName($0) }, contentID: content, withManifest: true, holdersAfter: nil)
    }

    @Test func entriesGoWhenWhatTheyShowIsTouched() throws {
        var cache = DetailsCache()
        let byName = try key(name: "a.bin"), byX = try key(x), byY = try key(y)
        cache.store(entry([x]), for: byName)
        cache.store(entry([x]), for: byX)
        cache.store(entry([y]), for: byY)
        var touched = TrackerRegistry.Touched()
        touched.contents = [y]
        cache.invalidate(touched)
        #expect(cache.entry(byY) == nil && cache.entry(byX) != nil && cache.entry(byName) != nil, "y's reply goes, x's stay")
        touched = TrackerRegistry.Touched()
        touched.names = [try FileName("a.bin")]
        cache.invalidate(touched)
        #expect(cache.entry(byName) == nil && cache.entry(byX) != nil, "a new content under the name: the name's reply goes")
        touched = TrackerRegistry.Touched()
        touched.contents = [x]
        cache.invalidate(touched)
        #expect(cache.count == 0 && cache.byteCount == 0)
    }

    /// A reply encoded off the actor is kept only if no change was
    /// published after the registry's view it shows was taken: that change
    /// may have touched it, and its invalidation has already run.
    @Test func anEntryMadeBeforeAChangeIsNotKept() throws {
        let served = ServedReplies(listPageSize: 128, now: { 0 })
        let byX = try key(x), byY = try key(y)
        served.publish(7, touched: TrackerRegistry.Touched(), listRows: [])
        served.storeDetails(entry([x]), for: byX, madeAt: 7)
        #expect(try served.details(byX, asker: "someone", extending: nil) != nil, "made at the current generation: kept")
        served.publish(8, touched: TrackerRegistry.Touched(contents: [y]), listRows: [])
        served.storeDetails(entry([y]), for: byY, madeAt: 7)
        #expect(try served.details(byY, asker: "someone", extending: nil) == nil, "made before generation 8 touched y: not kept")
        #expect(try served.details(byX, asker: "someone", extending: nil) != nil, "x was not touched")
        #expect(try served.details(byX, asker: "h", extending: nil) == nil, "a holder of x gets a reply of its own")
    }

    @Test func theCacheIsBounded() throws {
        var cache = DetailsCache()
        cache.maximumBytes = 10_000
        for i in 0..<500 {
            cache.store(entry([x], bytes: 900), for: try key(name: "f\(i).bin"))
            #expect(cache.byteCount <= 10_000)
        }
        #expect(cache.count > 0)
    }
}
