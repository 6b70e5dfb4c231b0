import NIOCore
import ShoalCore
import ShoalTestSupport
import ShoalWire
import Testing

@Suite("Control messages")
struct ControlMessageTests {
    static let id = ContentID(hex: String(repeating: "ab", count: 32))!
    static let manifest = try! Manifest(canonicalBytes: Fixtures.bytes("manifests/data.bin-16KiB.manifest"))

    static let samples: [Message] = [
        .hello(Hello(role: "peer", software: "shoal 0.1.0")),
        .helloAck(HelloAck(role: "tracker", software: "shoal 0.1.0")),
        .error(ErrorReply(code: .nameTaken, message: "the name maria is taken")),
        .checkActive(CheckActive(nonce: 77)), .active(Active(nonce: 77)),
        .register(Register(user: "maria", password: "s3cret")), .registered(Registered(user: "maria")),
        .login(Login(user: "maria", password: "s3cret", port: 9000)),
        .loggedIn(LoggedIn(token: "00ff", user: "maria", countDownloads: 2, countFailures: 1)),
        .logout(Logout(token: "00ff")), .loggedOut(LoggedOut()),
        .announce(Announce(token: "t", replace: true, files: [
            AnnouncedFile(name: "καλημέρα.txt", contentID: manifest.contentID, manifest: ManifestPayload(manifest)),
            AnnouncedFile(name: "x", contentID: id, have: [1, 2], withdrawn: false),
        ])),
        .announced(Announced(files: 2)),
        .list(ListFiles(token: "t")),
        .list(ListFiles(token: "t", after: ListCursor(name: "a b.txt", contentID: id))),
        .list(ListFiles(token: "t", compact: true)),
        .fileList(FileList(files: [ListedFile(name: "a \"b\".txt", contentID: id, size: 5, holders: 1, partialHolders: 0),
                                   ListedFile(name: "καλημέρα", contentID: id, size: UInt64.max, holders: 0, partialHolders: 7)],
                           next: ListCursor(name: "καλημέρα", contentID: id), compact: true)),
        .fileList(FileList(files: [ListedFile(name: "a b.txt", contentID: id, size: 5, holders: 1, partialHolders: 0)])),
        .fileList(FileList(files: [ListedFile(name: "a b.txt", contentID: id, size: 5, holders: 1, partialHolders: 0)],
                           next: ListCursor(name: "a b.txt", contentID: id))),
        .details(Details(token: "t", name: "a")),
        .details(Details(token: "t", contentID: id, withoutManifest: true, holdersAfter: "maria")),
        .fileDetails(FileDetails(files: [FileDetail(name: "a", contentID: id, manifest: nil, holders: [], moreHolders: 3, size: 5, chunkCount: 1,
                                                    completeHolders: 2, partialHolders: 1, firstSharedBy: "maria", since: 1_764_000_000)],
                                 moreContents: 4)),
        .manifest(ManifestRequest(token: "t", contentID: manifest.contentID, from: 0)),
        .manifestPart(ManifestPart(contentID: manifest.contentID, fileSize: manifest.fileSize, chunkSize: manifest.chunkSize, from: 0,
                                   digests: ManifestPayload(manifest).digests)),
        .fileDetails(FileDetails(files: [FileDetail(name: "a", contentID: manifest.contentID, manifest: ManifestPayload(manifest), holders: [
            Holder(user: "maria", host: "127.0.0.1", port: 9000, countDownloads: 3, countFailures: 0, bytesServed: 100, chunks: nil),
        ])])),
        .report(Report(token: "t", contentID: id, holder: "maria", outcome: .failure, bytes: 0)),
        .reported(Reported(holder: "maria", countDownloads: 3, countFailures: 1)),
        .status(StatusRequest()),
        .trackerStatus(TrackerStatus(registered: 2, connected: 1, files: [], peers: [
            .init(user: "maria", connected: true, host: "127.0.0.1", port: 1, countDownloads: 0, countFailures: 0, bytesServed: 0),
        ])),
    ]

    /// Every message survives frame encoding and decoding; every type is covered.
    @Test func everyMessageRoundTrips() throws {
        var seen = Set<MessageType>()
        for message in Self.samples + [.chunkRequest(ChunkRequest(contentID: Self.id, index: 1)),
                                        .chunkRequest(ChunkRequest(contentID: Self.id, index: 2, stored: true)),
                                        .chunkCancel(ChunkCancel(contentID: Self.id, index: 1)),
                                        .chunkData(ChunkData(contentID: Self.id, index: 1, rawLength: 3, isCompressed: false, data: ByteBuffer(bytes: [1, 2, 3])))] {
            let frame = try message.frame(requestID: 42)
            seen.insert(frame.type)
            var wire = frame.encoded()
            var decoder = FrameDecoder()
            let decoded = try #require(try decoder.decode(buffer: &wire))
            #expect(decoded.requestID == 42)
            #expect(try Message(frame: decoded) == message)
        }
        #expect(seen == Set(MessageType.allCases))
    }

    /// A reply too big for one frame is an error for the sender, not a crash.
    @Test func oversizeMessageIsAnError() {
        let huge = FileList(files: Array(repeating: ListedFile(name: String(repeating: "n", count: 255), contentID: Self.id, size: 1, holders: 1, partialHolders: 0), count: 50_000))
        #expect(throws: WireError.self) { try huge.frame(requestID: 1) }
    }

    /// Local wire errors map to the error reply a server sends before closing.
    @Test func wireErrorsMapToReplies() {
        #expect(WireError.unsupportedVersion(received: 2, supported: 1).reply.code == .unsupportedVersion)
        #expect(WireError.frameTooLarge(length: 1 << 30, limit: 1 << 24).reply.code == .tooLarge)
        #expect(WireError.unknownMessageType(0x7F).reply.code == .badRequest)
        #expect(WireError.remote(code: "name_taken", message: "taken").reply == ErrorReply(code: .nameTaken, message: "taken"))
    }

    /// A manifest survives its JSON form, and a forged one is caught.
    @Test func manifestPayload() throws {
        let payload = ManifestPayload(Self.manifest)
        #expect(try payload.manifest(expecting: Self.manifest.contentID) == Self.manifest)
        #expect(throws: ManifestError.self) { try payload.manifest(expecting: Self.id) }
        var lying = payload
        lying.fileSize += 20_000
        #expect(throws: ManifestError.chunkCountMismatch(expected: 20, actual: 19)) { try lying.manifest() }
        var garbage = payload
        garbage.digests = "not base64!"
        #expect(throws: ManifestError.badDigestEncoding) { try garbage.manifest() }
        var absurd = payload
        absurd.fileSize = .max
        #expect(throws: ManifestError.fileTooLarge(size: .max, limit: 1 << 40)) { try absurd.manifest() }
    }

    /// Malformed JSON and missing fields give a message that says what is wrong.
    @Test func malformedPayloads() throws {
        for (name, fragment) in [("malformed-json", "could not be decoded"), ("missing-field", "missing field 'password'")] {
            var decoder = FrameDecoder()
            var buffer = ByteBuffer(bytes: Fixtures.bytes("frames/broken/\(name).frame"))
            let frame = try #require(try decoder.decode(buffer: &buffer))
            do {
                _ = try Message(frame: frame)
                Issue.record("\(name) decoded")
            } catch {
                #expect(error.description.contains(fragment), "\(error)")
                guard case .malformedPayload(type: "login", _) = error else {
                    Issue.record("\(name): \(error)")
                    continue
                }
            }
        }
        let wrongType = Frame(type: .login, requestID: 1, payload: ByteBuffer(string: #"{"user": 5, "password": "x", "port": 1}"#))
        #expect(throws: WireError.malformedPayload(type: "login", reason: "field 'user' has the wrong type")) { try Message(frame: wrongType) }
        #expect(throws: WireError.self) { try Login(frame: try CheckActive(nonce: 1).frame(requestID: 1)) }
    }

    /// A `fileList` reads with its rows as objects (what trackers before
    /// `compact` send) or as arrays; elements past the five known are left
    /// for later versions, and a short or mistyped row is a clear error.
    @Test func fileListRowsTakeBothShapes() throws {
        let hex = Self.id.hex
        func list(_ json: String) throws -> FileList {
            try FileList(frame: Frame(type: .fileList, requestID: 1, payload: ByteBuffer(string: json)))
        }
        let row = ListedFile(name: "a", contentID: Self.id, size: 9, holders: 2, partialHolders: 1)
        let objects = try list(#"{"files":[{"contentID":"\#(hex)","holders":2,"name":"a","partialHolders":1,"size":9}]}"#)
        #expect(objects.files == [row] && !objects.compact)
        let nullRows = try list(#"{"files":[{"contentID":"\#(hex)","holders":2,"name":"a","partialHolders":1,"size":9}],"rows":null}"#)
        #expect(nullRows.files == [row] && !nullRows.compact, "a null field counts as absent")
        let arrays = try list(#"{"rows":[["a","\#(hex)",9,2,1,"later",{"x":1}]],"next":{"name":"a","contentID":"\#(hex)"}}"#)
        #expect(arrays.files == [row] && arrays.compact && arrays.next == ListCursor(name: "a", contentID: Self.id))
        #expect(throws: WireError.self) { try list(#"{"rows":[["a","\#(hex)",9,2]]}"#) }
        #expect(throws: WireError.self) { try list(#"{"rows":[["a","\#(hex)","9",2,1]]}"#) }
        #expect(throws: WireError.self) { try list(#"{"rows":[{"name":"a"}]}"#) }
    }
}
