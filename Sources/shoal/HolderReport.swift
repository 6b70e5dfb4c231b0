import Foundation
import ShoalCore
import ShoalNet
import ShoalPeer
import ShoalWire

/// A file's details as `shoal details` and the menu show them: each holder
/// with its address, measured response time, score, downloads and failures.
struct HolderReport: Codable {
    struct Row: Codable {
        var user: String
        var host: String
        var port: Int
        var complete: Bool
        var chunks: Int
        var responseTimeMs: Double?
        var score: Double?
        var countDownloads: Int
        var countFailures: Int
        var bytesServed: UInt64
    }

    var name: String
    var contentID: String
    var size: UInt64
    var chunkSize: UInt32
    var chunks: Int
    /// Who first shared this content under this name, and when (ISO 8601).
    var firstSharedBy: String?
    var since: String?
    var holders: [Row]

    /// Asks the tracker, then times each holder with CheckActive: one report
    /// per content shared under `name` (several contents can share a name;
    /// they come oldest first), or only the content whose id starts with `content`.
    static func make(name: String, content: String? = nil, session: TrackerSession) async throws -> [HolderReport] {
        let summary: FileDetails
        do {
            summary = try await session.details(name: name)
        } catch NetError.wire(.remote("not_found", _)) {
            throw CLIError("FILE DOES NOT EXIST: no connected peer shares \(name.debugDescription)")
        }
        var chosen = summary.files
        if let content { chosen = chosen.filter { $0.contentID.hex.hasPrefix(content.lowercased()) } }
        guard !chosen.isEmpty else { throw CLIError("FILE DOES NOT EXIST: no connected peer shares \(name.debugDescription)\(content.map { " as content \($0)" } ?? "")") }
        var reports: [HolderReport] = []
        for detail in chosen {
            let whole = detail.manifest != nil ? detail : try await session.details(contentID: detail.contentID).first ?? detail
            reports.append(try await make(whole))
        }
        return reports
    }

    private static func make(_ detail: FileDetail) async throws -> HolderReport {
        let name = detail.name
        guard let payload = detail.manifest else { throw CLIError("the tracker's details of \(name.debugDescription) carry no manifest") }
        let manifest = try payload.manifest(expecting: detail.contentID)
        let rows = await withTaskGroup(of: (Int, Row).self) { group in
            for (index, holder) in detail.holders.enumerated() {
                group.addTask {
                    let chunks = holder.chunkMap(count: manifest.chunkCount)?.heldCount ?? manifest.chunkCount
                    var row = Row(user: holder.user, host: holder.host, port: holder.port, complete: holder.chunks == nil, chunks: chunks,
                                  responseTimeMs: nil, score: nil, countDownloads: holder.countDownloads,
                                  countFailures: holder.countFailures, bytesServed: holder.bytesServed)
                    if let rtt = await Self.roundTrip(holder) {
                        row.responseTimeMs = rtt * 1000
                        row.score = PeerScore(responseTime: rtt, countDownloads: holder.countDownloads, countFailures: holder.countFailures)
                            .value(chunkSize: Int(manifest.chunkSize)) * 1000
                    }
                    return (index, row)
                }
            }
            return await group.reduce(into: [(Int, Row)]()) { $0.append($1) }.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return HolderReport(name: detail.name, contentID: detail.contentID.hex, size: manifest.fileSize, chunkSize: manifest.chunkSize,
                            chunks: manifest.chunkCount, firstSharedBy: detail.firstSharedBy,
                            since: detail.since.flatMap { $0 > 0 ? ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) : nil },
                            holders: rows.sorted { ($0.score ?? .infinity) < ($1.score ?? .infinity) })
    }

    /// The CheckActive round trip to a holder, in seconds; nil if it does not answer.
    static func roundTrip(_ holder: Holder) async -> Double? {
        // Over TLS, pinned, when the holder announced a key; it must prove it.
        guard case let .success(security) = HolderLink.security(for: holder, encryptedOnly: false),
              let connection = try? await FramedConnection.connect(host: holder.host, port: holder.port, role: "peer", timeout: .seconds(3),
                                                                   security: security) else { return nil }
        defer { connection.close() }
        let start = ContinuousClock.now
        guard (try? await connection.request(.checkActive(CheckActive(nonce: 7)), timeout: .seconds(3))) != nil else { return nil }
        return (ContinuousClock.now - start).seconds
    }

    func print() {
        Output.line("\(name)  \(Output.bytes(size))  \(chunks) chunks of \(chunkSize / 1024) KiB  content \(String(contentID.prefix(16)))")
        if let firstSharedBy {
            Output.line("  first shared by \(firstSharedBy)\(since.map { " at \($0)" } ?? "")")
        }
        guard !holders.isEmpty else {
            Output.line("  No other peer holds it right now.")
            return
        }
        Output.line("  holder                 address                 score  response  downloads  failures  chunks")
        for row in holders {
            let address = "\(row.host):\(row.port)"
            let score = row.score.map { String(format: "%.3f", $0) } ?? "-"
            let rtt = row.responseTimeMs.map { String(format: "%.2f ms", $0) } ?? "no answer"
            Output.line("  " + pad(row.user, 22) + " " + pad(address, 22) + " " + pad(score, 6, right: true) + "  " + pad(rtt, 8, right: true)
                        + "  " + pad("\(row.countDownloads)", 9, right: true) + "  " + pad("\(row.countFailures)", 8, right: true)
                        + "  " + (row.complete ? "all" : "\(row.chunks)/\(chunks)"))
        }
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        guard text.count < width else { return text }
        let space = String(repeating: " ", count: width - text.count)
        return right ? space + text : text + space
    }
}
