/// Whether to ask for chunks compressed or stored, decided by trying both.
///
/// Compression trades the link for the downloader's CPU: a compressed chunk
/// costs fewer bytes on the wire but an inflate before its SHA-256, which here
/// runs at a few hundred MB/s per core against about 1.4 GB/s for hashing
/// alone. Over slow links compression multiplies what they carry; over fast
/// ones (loopback, a LAN) the inflate is what limits, and stored chunks (which
/// a seeder sends with `sendfile`, straight from the file) go faster. Which
/// case holds depends on the links, the data and how busy the machine is, so
/// the downloader measures rather than guesses:
///
/// 1. it asks every holder for compressed chunks, lets ``warmUpChunks``
///    complete while the pipelines fill, then measures the rate at which
///    the next ``probeChunks`` complete (verified and written);
/// 2. then asks for stored chunks, and measures the same way (chunks asked
///    for before the switch are not counted);
/// 3. it keeps the mode that completed more bytes per second (compressed
///    only if it beat stored by 10 % and some chunk did come compressed), and
///    measures the other again every ``retrySeconds``, as loads change.
///
/// Over a near link (the first holder answers within ``nearRoundTrip``:
/// loopback, a LAN) the probes go the other way round: stored first, and if
/// stored chunks already complete faster than the downloader could inflate
/// and verify them on all its cores (``inflateCapacity``, measured on this
/// machine), compressed chunks cannot win and are never asked for: the
/// compressed probe would only slow down a link faster than inflating.
///
/// Stored chunks can only win where the downloader's CPU is what limits: if
/// it used less than three quarters of its cores while compressed chunks came
/// (and some did come compressed), the links are the limit, compressed is
/// kept at once and step 2 is skipped: over slow links that probe would cost
/// time. A probe lasts at least ``minimumProbeSeconds``, so that the CPU time
/// it measures is more than scheduling noise.
///
/// The choice is the download's, not each holder's: holders share the
/// downloader's cores, so what one holder's chunks cost shows up in the
/// others' rates, and only the whole download's rate tells the two apart.
public struct CompressionChoice: Sendable {
    /// What the user asked for.
    public enum Mode: String, Sendable, CaseIterable {
        /// Decide by measuring, as above.
        case auto
        /// Always ask for compressed chunks (a metered link, say): holders
        /// compress whatever shrinks by 10 %.
        case always
        /// Always ask for stored chunks: no inflate, no compressing.
        case never
    }

    /// Chunks whose completion rate is measured in each probe.
    public static let probeChunks = 24
    /// Chunks not counted at the start, while the pipelines fill.
    public static let warmUpChunks = 16
    /// A probe lasts at least this long (seconds), so that the CPU time it
    /// measures is not scheduling noise.
    public static let minimumProbeSeconds = 0.1
    /// How long a decision stands before the other mode is measured again.
    public static let retrySeconds = 20.0
    /// A first holder answering within this (seconds) makes the first probe a stored one.
    public static let nearRoundTrip = 0.001

    /// A window of completions being measured.
    private struct Window: Sendable, Equatable {
        var stored: Bool
        /// Completions still to pass over (asked for in the other mode, or warm-up).
        var skip: Int
        var first: Double?
        var last = 0.0
        var bytes = 0
        var chunks = 0
        var shrank = false
        /// The process's CPU seconds at the first and last completion counted.
        var cpuFirst = 0.0
        var cpuLast = 0.0

        /// Cores busy, on average, over the window.
        var load: Double {
            guard let first, last > first else { return 0 }
            return (cpuLast - cpuFirst) / (last - first)
        }

        /// Bytes per second from the first completion counted to the last.
        var rate: Double {
            guard let first, last > first, chunks > 1 else { return 0 }
            return Double(bytes) / (last - first)
        }
    }

    private enum Phase: Sendable, Equatable {
        /// No holder has answered yet: compressed is asked for until one does.
        case waiting
        /// Measuring `window`; `other` is the first mode's window, once measured.
        case probing(window: Window, other: Window?)
        case decided(stored: Bool, at: Double)
    }

    public let mode: Mode
    /// The cores the downloader can use.
    public let cores: Int
    /// Bytes of file per second the downloader can inflate and verify on all
    /// its cores; nil if unknown (then stored never settles it alone).
    public private(set) var inflateCapacity: Double?
    /// Whether ``inflateCapacity`` is being measured and will come
    /// (``calibrated(_:)``): a finished stored probe waits for it, measuring
    /// on, rather than switching to compressed for want of it.
    public private(set) var awaitingCalibration: Bool
    private var phase = Phase.waiting

    public init(mode: Mode = .auto, cores: Int = ProcessInfoLite.activeProcessorCount, inflateCapacity: Double? = nil,
                awaitingCalibration: Bool = false) {
        self.mode = mode
        self.cores = max(1, cores)
        self.inflateCapacity = inflateCapacity
        self.awaitingCalibration = inflateCapacity == nil && awaitingCalibration
    }

    /// The inflate capacity measured meanwhile (see ``awaitingCalibration``).
    public mutating func calibrated(_ capacity: Double) {
        inflateCapacity = capacity
        awaitingCalibration = false
    }

    /// A holder answered a first request in `roundTrip` seconds. The first
    /// one to answer sets which mode is measured first.
    public mutating func connected(roundTrip: Double) {
        guard phase == .waiting else { return }
        let near = roundTrip < Self.nearRoundTrip
        phase = .probing(window: Window(stored: near, skip: Self.warmUpChunks), other: nil)
    }

    /// Whether to ask for stored chunks now.
    public var asksStored: Bool {
        switch mode {
        case .always: return false
        case .never: return true
        case .auto: break
        }
        switch phase {
        case .waiting: return false
        case let .probing(window, _): return window.stored
        case let .decided(stored, _): return stored
        }
    }

    /// A chunk of `bytes` completed at `now` (it came `compressed` or not),
    /// with `inFlight` requests still out over all holders, when the process
    /// has used `cpuSeconds` of CPU in all (read only while probing: it is a
    /// system call, and completions come thousands of times a second).
    public mutating func completed(bytes: Int, compressed: Bool, inFlight: Int, now: Double, cpuSeconds readCPU: @autoclosure () -> Double) {
        guard mode == .auto else { return }
        switch phase {
        case .waiting:
            // A chunk before any holder was timed: measure compressed first, as over far links.
            phase = .probing(window: Window(stored: false, skip: Self.warmUpChunks - 1), other: nil)
        case .probing(var window, let other):
            if window.skip > 0 {
                window.skip -= 1
            } else {
                let cpuSeconds = readCPU()
                if window.first == nil {
                    window.first = now
                    window.cpuFirst = cpuSeconds
                }
                window.last = now
                window.cpuLast = cpuSeconds
                window.chunks += 1
                // The first completion only starts the clock: its bytes came before it.
                if window.chunks > 1 { window.bytes += bytes }
                window.shrank = window.shrank || compressed
            }
            guard window.chunks >= Self.probeChunks, let first = window.first, now - first >= Self.minimumProbeSeconds else {
                phase = .probing(window: window, other: other)
                return
            }
            if !window.stored, other == nil, window.shrank, window.load < 0.75 * Double(cores) {
                // Compressed chunks came, and the CPU had room to spare: the links are the limit.
                phase = .decided(stored: false, at: now)
            } else if window.stored, other == nil, let inflateCapacity, window.rate >= inflateCapacity {
                // Stored chunks came faster than this machine inflates: compressed cannot win.
                phase = .decided(stored: true, at: now)
            } else if window.stored, other == nil, awaitingCalibration {
                // The capacity to hold this rate against is still being measured: go on measuring stored.
                phase = .probing(window: window, other: other)
            } else if let other {
                let (storedRun, compressedRun) = window.stored ? (window, other) : (other, window)
                let compressedWins = compressedRun.shrank && compressedRun.rate > storedRun.rate * 1.1
                phase = .decided(stored: !compressedWins, at: now)
            } else {
                phase = .probing(window: Window(stored: !window.stored, skip: inFlight), other: window)
            }
        case let .decided(stored, at):
            guard now - at >= Self.retrySeconds else { return }
            // Measure the current mode again, then the other.
            phase = .probing(window: Window(stored: stored, skip: 0), other: nil)
        }
    }
}

