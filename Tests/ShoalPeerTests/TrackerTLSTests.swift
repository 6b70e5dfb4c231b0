import Foundation
import NIOCore
import ShoalNet
import ShoalPeer
import ShoalTestSupport
import ShoalWire
import Testing

/// TLS on tracker connections: the handshake, pinning on first use, refused
/// fingerprints, clear/TLS mismatches, and what a listener on the path sees.
@Suite("tracker TLS", .timeLimit(.minutes(2)))
struct TrackerTLSTests {
    /// Registering and logging in over TLS work, and the first meeting pins
    /// the tracker's fingerprint in the known-trackers file; later
    /// connections use that pin.
    @Test func firstUsePinsTheFingerprint() async throws {
        let tracker = try await TestTracker.start()
        defer { Task { await tracker.stopAndRemove() } }
        let folder = try TemporaryDirectory("shoal-known")
        defer { folder.remove() }
        let known = KnownTrackers(path: folder.file("sub/known_trackers"))
        let endpoint = Endpoint(host: "127.0.0.1", port: tracker.port)
        let fingerprint = try #require(tracker.fingerprint)

        try await TrackerSession.register(endpoint: endpoint, trust: .knownTrackers(known), user: "ana", password: "pw-ana")
        let text = try String(contentsOfFile: known.path, encoding: .utf8)
        #expect(text == "127.0.0.1:\(tracker.port) \(fingerprint.hex)\n")
        #expect(try known.fingerprint(for: endpoint) == fingerprint)
        let mode = try FileManager.default.attributesOfItem(atPath: known.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        let session = try await TrackerSession.login(endpoint: endpoint, trust: .knownTrackers(known), user: "ana", password: "pw-ana",
                                                     servePort: 0, logger: .init(label: "test"))
        #expect(await session.isConnected)
        await session.logout()
        #expect(try String(contentsOfFile: known.path, encoding: .utf8) == text, "pinned once, not again")
        #expect(tracker.log.contains("login: ana"))
    }

    /// A tracker whose fingerprint differs from the pinned one is refused
    /// before anything is sent, with a message naming the file and the line to remove.
    @Test func changedFingerprintIsRefused() async throws {
        let tracker = try await TestTracker.start()
        defer { Task { await tracker.stopAndRemove() } }
        let folder = try TemporaryDirectory("shoal-known")
        defer { folder.remove() }
        let known = KnownTrackers(path: folder.file("known_trackers"))
        let endpoint = Endpoint(host: "127.0.0.1", port: tracker.port)
        let old = try TLSIdentity.generate(commonName: "the tracker's old key").fingerprint
        try known.pin(old, for: endpoint)

        let error = await #expect(throws: NetError.self) {
            try await TrackerSession.register(endpoint: endpoint, trust: .knownTrackers(known), user: "ana", password: "pw-ana")
        }
        guard case let .fingerprintMismatch(_, expected, presented, _)? = error else {
            Issue.record("expected a fingerprint mismatch, got \(String(describing: error))")
            return
        }
        #expect(expected == old.grouped && presented == tracker.fingerprint?.grouped)
        let message = "\(error!)"
        #expect(message.contains("remove the line for 127.0.0.1:\(tracker.port) from \(known.path)"), "\(message)")
        #expect(!tracker.log.contains("register"), "nothing reached the tracker")
        #expect(try known.fingerprint(for: endpoint) == old, "the pin is not replaced")
    }

    /// `--tracker-fingerprint` that does not match is refused, saying to check it.
    @Test func wrongGivenFingerprintIsRefused() async throws {
        let tracker = try await TestTracker.start()
        defer { Task { await tracker.stopAndRemove() } }
        let wrong = try TLSIdentity.generate(commonName: "another").fingerprint
        let error = await #expect(throws: NetError.self) {
            try await TrackerSession.register(endpoint: Endpoint(host: "127.0.0.1", port: tracker.port), trust: .pinned(wrong), user: "ana", password: "pw")
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("Check --tracker-fingerprint"))
        #expect(!tracker.log.contains("register"))
    }

    /// A peer in clear meets a TLS tracker: told at once to leave out `--insecure`.
    @Test func clearPeerMeetsTLSTracker() async throws {
        let tracker = try await TestTracker.start()
        defer { Task { await tracker.stopAndRemove() } }
        let message = await refusalMessage {
            try await TrackerSession.register(endpoint: Endpoint(host: "127.0.0.1", port: tracker.port), trust: .insecure, user: "ana", password: "pw")
        }
        #expect(message?.contains("this tracker speaks TLS only; leave out --insecure") == true, "\(message ?? "no error")")
    }

    /// Bytes that are not TLS (an HTTP request, a frame in clear) get one
    /// plain `error` frame saying the tracker speaks TLS only, then the
    /// connection closes; the tracker goes on serving.
    @Test func clearBytesToTLSTrackerAreRefused() async throws {
        let tracker = try await TestTracker.start()
        defer { Task { await tracker.stopAndRemove() } }
        let refusal = try await rawRefusal(from: tracker, after: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(refusal?.hasPrefix("this tracker speaks TLS only") == true)
    }

    /// The start of a TLS handshake sent to a tracker in clear gets one plain
    /// `error` frame saying the tracker speaks in clear, then the connection
    /// closes (answered on the event loop: see ``TransportMismatchRefuser``); the
    /// tracker goes on serving.
    @Test func tlsBytesToClearTrackerAreRefused() async throws {
        let tracker = try await TestTracker.start(tls: false)
        defer { Task { await tracker.stopAndRemove() } }
        // A TLS record header (handshake, TLS 1.0 record version, 5 bytes) and the start of a ClientHello.
        let refusal = try await rawRefusal(from: tracker, after: [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03])
        #expect(refusal?.hasPrefix("this side speaks Shoal in clear, not TLS") == true, "\(refusal ?? "no error frame")")
    }

    /// Sends `bytes` on a raw connection to `tracker` and returns the message
    /// of the `error` frame it answers with before closing (nil, and an issue
    /// recorded, for anything else); checks that others are still served.
    private func rawRefusal(from tracker: TestTracker, after bytes: [UInt8]) async throws -> String? {
        let socket = try RawSocket(port: tracker.port)
        socket.send(bytes)
        let (reply, closed) = await socket.readUntilClosedAsync()
        #expect(closed)
        var decoder = FrameDecoder()
        var buffer = ByteBuffer(bytes: reply)
        let frame = try #require(try decoder.decodeFrame(&buffer))
        let client = try await tracker.connect()
        #expect(try await client.status(operatorToken: tracker.operatorToken).registered == 0, "others are still served")
        client.close()
        guard case let .error(refusal) = try Message(frame: frame) else {
            Issue.record("not an error frame")
            return nil
        }
        return refusal.message
    }

    /// A TLS peer meets a tracker in clear: told at once that it runs with `--insecure`.
    @Test func tlsPeerMeetsClearTracker() async throws {
        let tracker = try await TestTracker.start(tls: false)
        defer { Task { await tracker.stopAndRemove() } }
        let folder = try TemporaryDirectory("shoal-known")
        defer { folder.remove() }
        let known = KnownTrackers(path: folder.file("known_trackers"))
        let error = await #expect(throws: NetError.self) {
            try await TrackerSession.register(endpoint: Endpoint(host: "127.0.0.1", port: tracker.port), trust: .knownTrackers(known), user: "ana", password: "pw")
        }
        guard case .notTLS? = error else {
            Issue.record("expected notTLS, got \(String(describing: error))")
            return
        }
        #expect("\(error!)".contains("it runs with --insecure: to talk to it in clear"))
        #expect(!FileManager.default.fileExists(atPath: known.path), "nothing pinned")
    }

    /// What a listener between peer and tracker sees of a registration, a
    /// login and a request with the session token: with TLS, neither the
    /// password nor the token; in clear (`--insecure`), both (so the check can fail).
    @Test(arguments: [true, false])
    func captureOfALogin(tls: Bool) async throws {
        let tracker = try await TestTracker.start(tls: tls)
        defer { Task { await tracker.stopAndRemove() } }
        let relay = try RecordingRelay(targetPort: tracker.port)
        defer { relay.stop() }
        let password = "correct-horse-\(UUID().uuidString)"
        let connection = try await tracker.trust.connect(to: Endpoint(host: "127.0.0.1", port: relay.port))
        try await connection.register("maria", password)
        let token = try await connection.login("maria", password)
        _ = try await connection.list(token)
        connection.close()

        #expect(token.count >= 32)
        #expect(!relay.clientBytes.isEmpty && !relay.serverBytes.isEmpty, "the relay carried the session")
        #expect(relay.saw("maria") == !tls)
        #expect(relay.saw(password) == !tls, "password \(tls ? "in clear over TLS" : "not seen in clear")")
        #expect(relay.saw(token) == !tls, "token \(tls ? "in clear over TLS" : "not seen in clear")")
        if tls { #expect(relay.clientBytes.first == 0x16, "a TLS handshake record opens the connection") }
    }

    /// `--require-encryption`: a serving peer without a key fingerprint is
    /// refused with a message naming `--encrypt`; one with a key, or a tool
    /// that serves nothing (port 0), logs in; a malformed fingerprint is refused.
    @Test func requireEncryption() async throws {
        let tracker = try await TestTracker.start { $0.requireEncryption = true }
        defer { Task { await tracker.stopAndRemove() } }
        let connection = try await tracker.connect()
        defer { connection.close() }
        try await connection.register("ana", "pw")
        let refused = await refusalMessage {
            _ = try await connection.request(.login(Login(user: "ana", password: "pw", port: 9000)))
        }
        #expect(refused == "this tracker requires encrypted peer links: start the peer with --encrypt")
        let malformed = await refusalMessage {
            _ = try await connection.request(.login(Login(user: "ana", password: "pw", port: 9000, keyFingerprint: "abc")))
        }
        #expect(malformed?.contains("64 hex digits") == true)
        let key = try TLSIdentity.generate(commonName: "peer").fingerprint
        _ = try await connection.request(.login(Login(user: "ana", password: "pw", port: 9000, keyFingerprint: key.grouped.replacingOccurrences(of: ":", with: ""))))
        let tool = try await tracker.connect()
        defer { tool.close() }
        _ = try await tool.login("ana", "pw", port: 0)
    }
}
