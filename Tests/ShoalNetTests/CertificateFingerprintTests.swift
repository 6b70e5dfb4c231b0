import ShoalNet
import Testing

/// Fingerprints as people and files write them.
@Suite("certificate fingerprints")
struct CertificateFingerprintTests {
    /// The hex and the colon-grouped forms parse to the same value, in any case.
    @Test func bothFormsParse() throws {
        let identity = try TLSIdentity.generate(commonName: "test")
        let fingerprint = identity.fingerprint
        #expect(fingerprint.hex.count == 64)
        #expect(fingerprint.grouped.count == 95)
        #expect(try CertificateFingerprint(parsing: fingerprint.hex) == fingerprint)
        #expect(try CertificateFingerprint(parsing: fingerprint.grouped) == fingerprint)
        #expect(try CertificateFingerprint(parsing: fingerprint.hex.uppercased()) == fingerprint)
        #expect(CertificateFingerprint(derBytes: try identity.certificate.toDERBytes()) == fingerprint)
        #expect(try TLSIdentity.generate(commonName: "test").fingerprint != fingerprint, "a new key each time")
    }

    /// Wrong lengths and non-hex digits are refused with a message saying what to give.
    @Test(arguments: ["", "abc", String(repeating: "g", count: 64), String(repeating: "a", count: 63), String(repeating: "a", count: 66)])
    func malformedIsRefused(text: String) {
        #expect(throws: FingerprintError.malformed(text)) { try CertificateFingerprint(parsing: text) }
        #expect(FingerprintError.malformed(text).description.contains("64 hex digits"))
    }
}
