import Foundation

/// The identity of the running system boot (Linux's
/// `/proc/sys/kernel/random/boot_id`): it changes whenever the machine
/// restarts, and only then.
///
/// A file written but not yet flushed to disk is safe for as long as the
/// kernel that holds its pages runs: even if Shoal stops, the kernel writes
/// them out. What loses them is a crash or power loss of the whole machine,
/// which means a new boot (a failing disk or a full network filesystem can
/// too, and then nothing short of an fsync would have saved the file either).
/// So a finished download need not wait for its fsync: the folder notes the
/// boot it was written in, and after a restart checks such a file again
/// instead of trusting its cached manifest.
public enum BootID {
    /// The current boot's id, or nil where the system does not say (then
    /// downloads flush before they finish).
    public static let current: String? = {
        guard let data = FileManager.default.contents(atPath: "/proc/sys/kernel/random/boot_id") else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }()
}
