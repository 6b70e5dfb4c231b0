import ShoalNet
import ShoalWire

/// How a downloader reaches a holder: over TLS, pinned to the key
/// fingerprint the tracker lists for it, whenever it lists one; in clear
/// otherwise, unless the download is encrypted-only (`--encrypt`), which
/// then passes the holder over.
public enum HolderLink {
    public struct Refusal: Error, Equatable {
        public let reason: String
    }

    public static func security(for holder: Holder, encryptedOnly: Bool) -> Result<ClientSecurity, Refusal> {
        guard let text = holder.keyFingerprint else {
            if encryptedOnly {
                return .failure(Refusal(reason: "it serves in clear, and this peer runs with --encrypt (downloads only from holders that also run with --encrypt)"))
            }
            return .success(.plain)
        }
        guard let fingerprint = try? CertificateFingerprint(parsing: text) else {
            return .failure(Refusal(reason: "the tracker lists a malformed key fingerprint for it"))
        }
        return .success(.tls(TLSPin(
            expected: fingerprint,
            mismatchAdvice: "It cannot prove the key the tracker lists for it (someone else may be at that address); it is not used.",
            plainAdvice: "the tracker lists a key for it, yet it serves in clear; it is not used")))
    }
}
