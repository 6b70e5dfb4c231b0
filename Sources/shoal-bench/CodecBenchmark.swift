import ArgumentParser
import Foundation
import NIOCore
import ShoalCore
import ShoalPeer
import ShoalSamples
import ShoalWire

/// Chunk hashing and compression throughput, beside `openssl dgst -sha256`
/// and `gzip -1` on the same files.
struct CodecBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Hashing and compression throughput (MB/s) on a random and a text file."
    )

    @Option(name: .customLong("size-mib"), help: "Size of each sample file in MiB.")
    var sizeMiB = 256

    @Option(help: "zlib level for Shoal's compressor.")
    var level: Int32 = CompressionPolicy.defaultLevel

    @Option(help: "Where to write the sample files (default: a temporary folder, removed afterwards).")
    var workDir: String?

    func run() throws {
        let dir = workDir ?? NSTemporaryDirectory() + "shoal-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workDir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let size = sizeMiB << 20
        let samples = [("random", dir + "/random.bin"), ("text", dir + "/text.log")]
        say("Preparing \(sizeMiB) MiB sample files in \(dir) ...")
        try SampleData.writeRandom(path: samples[0].1, size: size)
        try SampleData.writeLogText(path: samples[1].1, size: size)

        say("cores: \(ProcessInfo.processInfo.activeProcessorCount), zlib level \(level); MB = 10^6 bytes; best of 3 runs\n")
        say(pad("file", 8) + pad("measurement", 50) + pad("MB/s", 10) + "output")
        for (label, path) in samples {
            // Warm the page cache so every contender reads from memory.
            _ = try ManifestBuilder(parallelism: 1).build(path: path)
            let mb = Double(size) / 1e6

            let (hashAll, manifest) = try best { try ManifestBuilder().build(path: path) }
            line(label, "Shoal manifest (SHA-256, all cores)", mb / hashAll, "\(manifest.chunkCount) chunks of \(manifest.chunkSize >> 10) KiB")
            let (hashOne, _) = try best { try ManifestBuilder(parallelism: 1).build(path: path) }
            line(label, "Shoal manifest (SHA-256, 1 core)", mb / hashOne, "")
            if let openssl = try? best({ try Self.runTool("/usr/bin/openssl", ["dgst", "-sha256", path]) }) {
                line(label, "openssl dgst -sha256 (1 core)", mb / openssl.0, "")
            }

            let chunks = try Self.loadChunks(path: path, manifest: manifest)
            let (first, firstOut) = try best { Self.compressAll(chunks, manifest: manifest, policy: .init(level: level), memo: nil) }
            line(label, "Shoal chunk compressor, first sight (1 core)", mb / first, Self.describe(firstOut, size))
            let memo = CompressionMemo()
            _ = Self.compressAll(chunks, manifest: manifest, policy: .init(level: level), memo: memo)
            let (again, againOut) = try best { Self.compressAll(chunks, manifest: manifest, policy: .init(level: level), memo: memo) }
            line(label, "Shoal chunk compressor, verdicts remembered", mb / again, Self.describe(againOut, size))
            let (raw, rawOut) = try best { Self.deflateAll(chunks, level: level) }
            line(label, "zlib deflate every chunk, no policy (1 core)", mb / raw, Self.describe(rawOut, size))
            if let gzip = try? best({ try Self.runTool("/bin/sh", ["-c", "gzip -\(level) -c '\(path)' | wc -c"]) }) {
                line(label, "gzip -\(level) (1 core)", mb / gzip.0, Self.describe(Int(gzip.1.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, size))
            }
            let frames = Self.encodeFrames(chunks, manifest: manifest, policy: .init(level: level))
            let (inflate, _) = try best { try Self.verifyAll(frames, manifest: manifest) }
            line(label, "Shoal receive: inflate + verify SHA-256 (1 core)", mb / inflate, "")
            say("")
        }
    }

    // MARK: - Measured operations

    static func loadChunks(path: String, manifest: Manifest) throws -> [[UInt8]] {
        let reader = try FileChunkReader(path: path)
        return try (0..<manifest.chunkCount).map { index in
            var bytes = [UInt8](repeating: 0, count: manifest.length(ofChunk: index))
            _ = try bytes.withUnsafeMutableBytes { try reader.read(at: manifest.offset(ofChunk: index), into: $0) }
            return bytes
        }
    }

    static func compressAll(_ chunks: [[UInt8]], manifest: Manifest, policy: CompressionPolicy, memo: CompressionMemo?) -> Int {
        let compressor = ChunkCompressor(policy: policy, memo: memo ?? CompressionMemo())
        var out = ByteBuffer()
        out.reserveCapacity(Int(ChunkSizing.maximum))
        var total = 0
        for (index, chunk) in chunks.enumerated() {
            out.clear()
            chunk.withUnsafeBytes { _ = compressor.encode($0, key: .init(contentID: manifest.contentID, index: UInt32(index)), into: &out) }
            total += out.readableBytes
        }
        return total
    }

    static func deflateAll(_ chunks: [[UInt8]], level: Int32) -> Int {
        let deflater = Deflater(level: level)
        var out = [UInt8](repeating: 0, count: deflater.bound(for: Int(ChunkSizing.maximum)))
        var total = 0
        for chunk in chunks {
            total += chunk.withUnsafeBytes { input in out.withUnsafeMutableBytes { deflater.compress(input, into: $0)! } }
        }
        return total
    }

    static func encodeFrames(_ chunks: [[UInt8]], manifest: Manifest, policy: CompressionPolicy) -> [ChunkData] {
        let compressor = ChunkCompressor(policy: policy)
        return chunks.enumerated().map { index, chunk in
            let frame = chunk.withUnsafeBytes {
                ChunkData.frame(contentID: manifest.contentID, index: UInt32(index), bytes: $0, compressor: compressor, requestID: 1)
            }
            return try! ChunkData(frame: frame)
        }
    }

    static func verifyAll(_ frames: [ChunkData], manifest: Manifest) throws -> Int {
        let inflater = Inflater()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(manifest.chunkSize), alignment: 16)
        defer { buffer.deallocate() }
        var total = 0
        for frame in frames { total += try frame.verify(against: manifest, inflater: inflater, into: buffer) }
        return total
    }

    static func runTool(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CleanExit.message("\(tool) failed") }
        return String(decoding: output, as: UTF8.self)
    }

    // MARK: - Reporting

    /// Runs `body` three times; the fastest wall time in seconds, and its result.
    func best<T>(_ body: () throws -> T) throws -> (Double, T) {
        var fastest = Double.infinity
        var result: T?
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            let value = try body()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if seconds < fastest { fastest = seconds; result = value }
        }
        return (fastest, result!)
    }

    static func describe(_ bytes: Int, _ size: Int) -> String {
        String(format: "%.1f %% of input", Double(bytes) * 100 / Double(size))
    }

    func line(_ file: String, _ what: String, _ rate: Double, _ output: String) {
        say(pad(file, 8) + pad(what, 50) + pad(String(format: "%.0f", rate), 10) + output)
    }

    /// Prints a line straight to standard output, unbuffered, so figures show
    /// as they are measured even when the output goes to a file.
    func say(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
