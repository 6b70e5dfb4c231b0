import ArgumentParser
import Foundation
import ShoalCore
import ShoalPeer
import ShoalWire

/// `shoal manifest FILE...`: hash files into manifests and print their content ids.
struct ManifestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manifest",
        abstract: "Hash files into chunk manifests and print their content ids."
    )

    @Argument(help: "The files to hash.")
    var files: [String]

    @Option(name: .customLong("chunk-size"), help: "Chunk size in KiB (16 ... 4096); default: the size rule in PROTOCOL.md.")
    var chunkSizeKiB: UInt32?

    @Flag(help: "Print one JSON document (an array, one object per file) instead of text.")
    var json = false

    func validate() throws {
        if let kib = chunkSizeKiB, !ChunkSizing.allowedChunkSizes.contains(kib &* 1024) || kib > 4096 {
            throw ValidationError("--chunk-size must be between 16 and 4096 (KiB); got \(kib)")
        }
    }

    func run() throws {
        let builder = ManifestBuilder()
        var rows: [Row] = []
        for path in files {
            let start = Date()
            let manifest: Manifest
            do {
                manifest = try builder.build(path: path, chunkSize: chunkSizeKiB.map { $0 * 1024 })
            } catch {
                throw CLIError("\(error)")
            }
            let row = Row(file: path, contentID: manifest.contentID.hex, size: manifest.fileSize,
                          chunkSize: manifest.chunkSize, chunks: manifest.chunkCount, seconds: Date().timeIntervalSince(start))
            if json {
                rows.append(row)
            } else {
                let rate = row.seconds > 0 ? Double(row.size) / row.seconds / 1e6 : 0
                print("\(row.contentID)  \(row.file)")
                print("  \(row.size) bytes, \(row.chunks) chunk\(row.chunks == 1 ? "" : "s") of \(row.chunkSize / 1024) KiB, hashed at \(String(format: "%.0f", rate)) MB/s")
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
        }
    }

    struct Row: Codable {
        var file: String
        var contentID: String
        var size: UInt64
        var chunkSize: UInt32
        var chunks: Int
        var seconds: Double
    }
}
