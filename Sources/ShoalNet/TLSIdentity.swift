#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import NIOSSL
import X509

/// A certificate and its private key: a tracker's (kept beside its database,
/// or given with `--tls-cert`/`--tls-key`) or an encrypting peer's (made
/// afresh for each run, in memory). Peers check it by its fingerprint only,
/// never by a CA chain or a host name, so a self-signed certificate is all it
/// takes.
public struct TLSIdentity: Sendable {
    public let certificate: NIOSSLCertificate
    public let privateKey: NIOSSLPrivateKey
    /// The SHA-256 of the certificate's DER bytes.
    public let fingerprint: CertificateFingerprint
    /// The server context for this identity, made once (building one per connection costs).
    public let serverContext: NIOSSLContext

    /// Wraps a certificate and key already loaded.
    public init(certificate: NIOSSLCertificate, privateKey: NIOSSLPrivateKey) throws(TLSSetupError) {
        self.certificate = certificate
        self.privateKey = privateKey
        do {
            self.fingerprint = CertificateFingerprint(derBytes: try certificate.toDERBytes())
            var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(privateKey))
            configuration.minimumTLSVersion = .tlsv13
            self.serverContext = try NIOSSLContext(configuration: configuration)
        } catch {
            throw .unusable(reason: "\(error)")
        }
    }

    /// A new self-signed P-256 certificate, valid for 20 years, named `commonName`.
    public static func generate(commonName: String) throws(TLSSetupError) -> TLSIdentity {
        let (certificatePEM, keyPEM) = try makePEM(commonName: commonName)
        return try parse(certificatePEM: certificatePEM, keyPEM: keyPEM, source: "a generated certificate")
    }

    /// Loads PEM files (`--tls-cert`, `--tls-key`).
    public static func load(certificatePath: String, keyPath: String) throws(TLSSetupError) -> TLSIdentity {
        let certificatePEM: String
        let keyPEM: String
        do {
            certificatePEM = try String(contentsOfFile: certificatePath, encoding: .utf8)
        } catch {
            throw .unreadable(path: certificatePath, reason: "\(error.localizedDescription)")
        }
        do {
            keyPEM = try String(contentsOfFile: keyPath, encoding: .utf8)
        } catch {
            throw .unreadable(path: keyPath, reason: "\(error.localizedDescription)")
        }
        return try parse(certificatePEM: certificatePEM, keyPEM: keyPEM, source: "\(certificatePath) and \(keyPath)")
    }

    /// Loads the certificate and key at these paths, or, when neither exists
    /// yet, makes a self-signed pair and writes it there (the key with mode
    /// 0600). Whether it was made now is returned with it.
    public static func loadOrCreate(certificatePath: String, keyPath: String, commonName: String) throws(TLSSetupError) -> (TLSIdentity, created: Bool) {
        let files = FileManager.default
        let haveCertificate = files.fileExists(atPath: certificatePath)
        let haveKey = files.fileExists(atPath: keyPath)
        if haveCertificate && haveKey { return (try load(certificatePath: certificatePath, keyPath: keyPath), false) }
        if haveCertificate != haveKey {
            throw .halfPresent(present: haveCertificate ? certificatePath : keyPath, missing: haveCertificate ? keyPath : certificatePath)
        }
        let (certificatePEM, keyPEM) = try makePEM(commonName: commonName)
        try write(keyPEM, to: keyPath, mode: 0o600)
        try write(certificatePEM, to: certificatePath, mode: 0o644)
        return (try parse(certificatePEM: certificatePEM, keyPEM: keyPEM, source: certificatePath), true)
    }

    private static func makePEM(commonName: String) throws(TLSSetupError) -> (certificate: String, key: String) {
        do {
            let key = P256.Signing.PrivateKey()
            let certificateKey = Certificate.PrivateKey(key)
            let name = try DistinguishedName { CommonName(commonName) }
            let now = Date()
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: certificateKey.publicKey,
                notValidBefore: now.addingTimeInterval(-3600),
                notValidAfter: now.addingTimeInterval(20 * 365 * 86_400),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    KeyUsage(digitalSignature: true)
                },
                issuerPrivateKey: certificateKey)
            return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
        } catch {
            throw .generationFailed(reason: "\(error)")
        }
    }

    private static func parse(certificatePEM: String, keyPEM: String, source: String) throws(TLSSetupError) -> TLSIdentity {
        let certificate: NIOSSLCertificate
        let key: NIOSSLPrivateKey
        do {
            certificate = try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem)
            key = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
        } catch {
            throw .unusable(reason: "\(source): \(error)")
        }
        return try TLSIdentity(certificate: certificate, privateKey: key)
    }

    private static func write(_ text: String, to path: String, mode: mode_t) throws(TLSSetupError) {
        // Created with its final mode, so the key is never readable by others, not even for a moment.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .unwritable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .unwritable(path: path, reason: String(cString: strerror(errno))) }
            written += n
        }
        guard fsync(fd) == 0 else { throw .unwritable(path: path, reason: String(cString: strerror(errno))) }
    }
}

/// Why a certificate or key could not be made or used.
public enum TLSSetupError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case unusable(reason: String)
    case generationFailed(reason: String)
    /// One of the pair exists and the other does not.
    case halfPresent(present: String, missing: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            "cannot read \(path) (\(reason)); check the path given to --tls-cert/--tls-key"
        case let .unwritable(path, reason):
            "cannot write \(path) (\(reason)); make its folder writable, or give --tls-cert and --tls-key"
        case let .unusable(reason):
            "the TLS certificate or key cannot be used (\(reason)); give a PEM certificate and its matching PEM private key"
        case let .generationFailed(reason):
            "making a self-signed certificate failed (\(reason))"
        case let .halfPresent(present, missing):
            "\(present) exists but \(missing) does not; restore the missing file, or move both away to make a new certificate (peers will then refuse the new fingerprint until they are told it)"
        }
    }
}
