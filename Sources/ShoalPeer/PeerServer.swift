import Logging
import NIOCore
import NIOPosix
import ShoalNet
import ShoalWire

/// A peer's server: answers `checkActive` and `chunkRequest` for whatever its
/// ``ChunkLibrary`` holds, to many downloaders at once, each connection in
/// its own task. A bad request gets an `error` reply and the connection goes
/// on; a broken frame closes that connection only.
public final class PeerServer: Sendable {
    public let library: ChunkLibrary
    private let server: FramedServer
    private let logger: Logger
    private let compression: CompressionPolicy
    private let task: Task<Void, Never>

    /// The port it serves on.
    public var port: Int { server.port }
    public var host: String { server.host }

    /// Binds `host:port` (0 picks a free port) and starts serving. The host
    /// `::` means every interface, IPv6 and IPv4; where IPv6 is turned off it
    /// falls back to `0.0.0.0`.
    public static func start(host: String = Endpoint.allInterfaces, port: Int = 0, library: ChunkLibrary,
                             compression: CompressionPolicy = CompressionPolicy(), logger: Logger) async throws -> PeerServer {
        func bind(_ host: String) async throws -> FramedServer {
            try await FramedServer.bind(host: host, port: port, maximumConnections: 256) {
                FramedServer.ConnectionSetup(
                    limit: { _ in 64 * 1024 },
                    handlers: [LivenessHandler(probeAfter: .seconds(30), timeout: .seconds(10))])
            }
        }
        let server: FramedServer
        do {
            server = try await bind(host)
        } catch where host == Endpoint.allInterfaces {
            logger.info("cannot listen on [::]:\(port) (\(error)); listening on IPv4 only")
            server = try await bind("0.0.0.0")
        }
        return PeerServer(server: server, library: library, compression: compression, logger: logger)
    }

    private init(server: FramedServer, library: ChunkLibrary, compression: CompressionPolicy, logger: Logger) {
        self.server = server
        self.library = library
        self.compression = compression
        self.logger = logger
        let serve: @Sendable (FramedServer.Connection) async -> Void = { [library, compression, logger] connection in
            await Self.serve(connection, library: library, compression: compression, logger: logger)
        }
        self.task = Task { await server.run(serve) }
    }

    /// Stops serving and waits until every connection is closed.
    public func stop() async {
        server.shutdown()
        await task.value
    }

    private static func serve(_ connection: FramedServer.Connection, library: ChunkLibrary, compression: CompressionPolicy, logger: Logger) async {
        let compressor = ChunkCompressor(policy: compression, memo: library.memo)
        let channel = connection.channel.channel
        let allocator = channel.allocator
        let liveness = try? await channel.pipeline.handler(type: LivenessHandler.self).get()
        let files = ConnectionFiles()
        defer { files.closeAll() }
        let deadline = channel.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
        defer { deadline.cancel() }
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
              do {
                var iterator = inbound.makeAsyncIterator()
                _ = try await FramedServer.acceptHandshake(&iterator, outbound: outbound, localRole: "peer")
                deadline.cancel()
                liveness?.activate(on: channel.eventLoop)
                while let frame = try await iterator.next() {
                    switch frame.type {
                    case .chunkRequest:
                        let reply: OutgoingFrame
                        do throws(WireError) {
                            let request = try ChunkRequest(frame: frame)
                            do throws(ChunkLibrary.Refusal) {
                                reply = try library.frame(for: request, requestID: frame.requestID, compressor: compressor, files: files,
                                                          allocator: allocator)
                            } catch {
                                reply = .frame(try error.reply.frame(requestID: frame.requestID))
                            }
                        } catch {
                            reply = .frame((try? error.reply.frame(requestID: frame.requestID)) ?? frame)
                        }
                        try await outbound.write(reply)
                    case .checkActive:
                        let nonce = (try? CheckActive(frame: frame))?.nonce ?? 0
                        try await outbound.write(try Active(nonce: nonce).frame(requestID: frame.requestID))
                    case .active:
                        continue
                    default:
                        let refusal = ErrorReply(code: .badRequest, message: "\(frame.type) is not a request a peer serves; ask for chunks")
                        try await outbound.write(try refusal.frame(requestID: frame.requestID))
                    }
                }
              } catch let error as WireError {
                // A broken frame: say why, then this connection (only) closes.
                logger.notice("peer connection from \(connection.remote): \(error)")
                if let reply = try? error.reply.frame(requestID: 0) { try? await outbound.write(reply) }
              }
            }
        } catch {
            logger.debug("peer connection from \(connection.remote) ended: \(error)")
        }
        // Writes still pending hold file regions: close the files once they are done or failed.
        channel.close(promise: nil)
        try? await channel.closeFuture.get()
    }
}
