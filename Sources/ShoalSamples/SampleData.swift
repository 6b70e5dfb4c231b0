import Foundation

/// Deterministic sample files for the demo and the benchmarks: incompressible
/// bytes and log-like text.
public enum SampleData {
    /// SplitMix64: fast, seeded, good enough to defeat deflate.
    public struct Generator {
        public init(state: UInt64) { self.state = state }
        public var state: UInt64
        public mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Writes `size` bytes of random data to `path`.
    public static func writeRandom(path: String, size: Int, seed: UInt64 = 1) throws {
        var generator = Generator(state: seed)
        try write(path: path, size: size) { buffer in
            buffer.withMemoryRebound(to: UInt64.self) { words in
                for i in words.indices { words[i] = generator.next() }
            }
        }
    }

    /// Writes `size` bytes of log-like text (timestamps, levels, paths, ids) to `path`.
    ///
    /// Lines come from a pool of 4 096 formatted once, each given a running
    /// sequence number and timestamp, so generating hundreds of MiB takes a
    /// fraction of a second and zlib still sees varied, realistic text.
    public static func writeLogText(path: String, size: Int, seed: UInt64 = 2) throws {
        try write(path: path, size: size, fill: logTextFiller(seed: seed))
    }

    /// `size` bytes of the same log-like text, in memory.
    public static func logText(size: Int, seed: UInt64 = 2) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        let fill = logTextFiller(seed: seed)
        bytes.withUnsafeMutableBytes { fill($0) }
        return bytes
    }

    /// Fills each buffer it is given with the next stretch of log-like text.
    private static func logTextFiller(seed: UInt64) -> (UnsafeMutableRawBufferPointer) -> Void {
        var generator = Generator(state: seed)
        let levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
        let verbs = ["GET", "GET", "POST", "PUT", "DELETE"]
        let paths = ["/api/v1/files", "/api/v1/peers", "/api/v1/chunks", "/health", "/api/v1/users/login", "/static/app.js"]
        let messages = ["request served", "cache miss, fetching from origin", "slow response from upstream",
                        "connection reset by peer", "chunk verified", "session renewed"]
        let pool: [[UInt8]] = (0..<4096).map { _ in
            let r = generator.next()
            let line = " \(levels[Int(r >> 16) % levels.count]) [worker-\(Int(r >> 20) % 8)] \(verbs[Int(r >> 24) % verbs.count]) "
                + "\(paths[Int(r >> 28) % paths.count])?id=\(Int(r >> 32) % 100_000) status=\([200, 200, 200, 304, 404, 500][Int(r >> 40) % 6]) "
                + "bytes=\(Int(r >> 44) % 65536) \(messages[Int(r >> 50) % messages.count])\n"
            return Array(line.utf8)
        }
        let digits = Array("0123456789".utf8)
        var sequence = 0
        var second = 0
        var pending = [UInt8]()
        return { buffer in
            var filled = 0
            while filled < buffer.count {
                if pending.isEmpty {
                    let r = generator.next()
                    second += Int(r & 3) == 0 ? 1 : 0
                    sequence += 1
                    // "2026-11-27T HH:MM:SS #sequence" then the pooled line.
                    var line = Array("2026-11-27T".utf8)
                    for value in [(second / 3600) % 24, (second / 60) % 60, second % 60] {
                        line.append(digits[value / 10])
                        line.append(digits[value % 10])
                        line.append(UInt8(ascii: ":"))
                    }
                    line[line.count - 1] = UInt8(ascii: "Z")
                    line += Array(" #\(sequence)".utf8)
                    line += pool[Int(r >> 8) & 4095]
                    pending = line
                }
                let n = min(pending.count, buffer.count - filled)
                for i in 0..<n { buffer[filled + i] = pending[i] }
                pending.removeFirst(n)
                filled += n
            }
        }
    }

    /// Writes `size` bytes: the first half log-like text, the second half random.
    public static func writeMixed(path: String, size: Int, seed: UInt64 = 3) throws {
        let half = size / 2
        try writeLogText(path: path, size: half, seed: seed)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        var generator = Generator(state: seed)
        let block = 1 << 20
        var words = [UInt64](repeating: 0, count: block / 8)
        var written = 0
        while written < size - half {
            for i in words.indices { words[i] = generator.next() }
            let n = min(block, size - half - written)
            try words.withUnsafeBytes { try handle.write(contentsOf: Data(bytes: $0.baseAddress!, count: n)) }
            written += n
        }
    }

    private static func write(path: String, size: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let block = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: block, alignment: 8)
        defer { buffer.deallocate() }
        var written = 0
        while written < size {
            fill(buffer)
            let n = min(block, size - written)
            try handle.write(contentsOf: Data(bytes: buffer.baseAddress!, count: n))
            written += n
        }
    }
}
