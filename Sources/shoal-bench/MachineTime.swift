import Foundation

/// The whole machine's CPU time from `/proc/stat`, in clock ticks: how busy
/// it was over a benchmark's phase, and how much time the hypervisor gave
/// to other guests while this one had work (`steal`). On a shared host a
/// few percent of steal, in bursts, sets a latency tail by itself, so a
/// benchmark prints it beside its figures.
struct MachineTime {
    var busy: UInt64 = 0
    var idle: UInt64 = 0
    var steal: UInt64 = 0
    var cores = ProcessInfo.processInfo.activeProcessorCount

    /// The counters now (zeros where `/proc/stat` cannot be read).
    static func now() -> MachineTime {
        var time = MachineTime()
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return time }
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let ticks = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard ticks.count >= 8 else { return time }
        time.busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
        time.idle = ticks[3] + ticks[4]
        time.steal = ticks[7]
        return time
    }

    /// The time between `earlier` and this.
    func since(_ earlier: MachineTime) -> MachineTime {
        MachineTime(busy: busy &- earlier.busy, idle: idle &- earlier.idle, steal: steal &- earlier.steal, cores: cores)
    }

    private var total: Double { Double(busy + idle + steal) }
    var busyPercent: Double { total > 0 ? Double(busy) / total * 100 : 0 }
    var stealPercent: Double { total > 0 ? Double(steal) / total * 100 : 0 }
}
