import ShoalCore

extension ManifestBuilder {
    /// Hashes the file at `path` into a manifest, streaming it with `pread`.
    public func build(path: String, chunkSize: UInt32? = nil, progress: (@Sendable (UInt64) -> Void)? = nil) throws -> Manifest {
        let reader = try FileChunkReader(path: path)
        return try build(fileSize: reader.size, chunkSize: chunkSize, reader: reader, progress: progress)
    }
}
