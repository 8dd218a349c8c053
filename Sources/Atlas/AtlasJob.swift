import Foundation

/// Runs one shard's units in plan order, skipping finished ones (a rerun after preemption
/// resumes where the last one stopped), and measures throughput as it goes.
public struct AtlasJob {
    /// Does each unit (model, plan, site folder).
    public let runner: AtlasRunner
    /// Which units are this process's.
    public let shard: AtlasShard

    /// A job running `shard`'s units with `runner`.
    public init(runner: AtlasRunner, shard: AtlasShard) { self.runner = runner; self.shard = shard }

    /// Throughput measured on this device, and what it projects.
    public struct Summary: Sendable {
        /// Units done in this run, and units skipped because a finished copy was already there.
        public var ran = 0, skipped = 0
        /// Seconds spent in channel units, and channels visualized in them.
        public var channelSeconds = 0.0, channels = 0
        /// Seconds spent in image units, and images passed through in them.
        public var imageSeconds = 0.0, images = 0
        /// Wall seconds of the whole run.
        public var seconds = 0.0
        /// Channels visualized per minute in this run (nil when none was).
        public var channelsPerMinute: Double? { channels > 0 ? Double(channels) / channelSeconds * 60 : nil }
        /// Dataset images per second in this run (nil when none was).
        public var imagesPerSecond: Double? { images > 0 ? Double(images) / imageSeconds : nil }
        /// Seconds `channels` channels and `images` images would take on this device.
        public func projected(channels c: Int, images i: Int) -> Double? {
            let a = c == 0 ? 0 : channelsPerMinute.map { Double(c) / $0 * 60 }
            let b = i == 0 ? 0 : imagesPerSecond.map { Double(i) / $0 }
            guard let a, let b else { return nil }
            return a + b
        }
    }

    /// This shard's units (plan order, with their plan indices).
    public var units: [(index: Int, unit: AtlasUnit)] {
        runner.plan.units.enumerated().filter { shard.owns($0.offset) }.map { ($0.offset, $0.element) }
    }

    /// This shard's units that are not done yet.
    public var pending: [(index: Int, unit: AtlasUnit)] { units.filter { !runner.folder.isDone(runner.plan.id($0.unit)) } }

    /// Does the shard's unfinished units. `report` gets one line per unit with the ETA of the
    /// rest of the shard; `step` gets in-unit progress.
    public func run(report: (String) -> Void, step: (String) -> Void = { _ in }) throws -> Summary {
        let plan = runner.plan
        let mine = units
        var summary = Summary()
        let todo = pending
        summary.skipped = mine.count - todo.count
        var left = (channels: todo.reduce(0) { if case .channels(_, let r) = $1.unit { $0 + r.count } else { $0 } },
                    images: todo.reduce(0) { if case .images(let r) = $1.unit { $0 + r.count } else { $0 } })
        for (n, (_, unit)) in todo.enumerated() {
            let seconds = try runner.run(unit) { step("[\(n + 1)/\(todo.count)] \(plan.describe(unit)): \($0)") }
            summary.ran += 1
            summary.seconds += seconds
            switch unit {
            case .channels(_, let r): summary.channels += r.count; summary.channelSeconds += seconds; left.channels -= r.count
            case .images(let r): summary.images += r.count; summary.imageSeconds += seconds; left.images -= r.count
            }
            let eta = summary.projected(channels: left.channels, images: left.images).map { "ETA \(duration($0))" }
                ?? "ETA after the first \(summary.channels == 0 ? "channel" : "image") unit"
            report("[\(n + 1)/\(todo.count)] \(plan.describe(unit)): \(String(format: "%.1f", seconds)) s"
                   + (n + 1 < todo.count ? "  \(eta)" : ""))
        }
        return summary
    }
}

/// "1 h 05 min", "3 min 20 s", "12 s".
public func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s >= 86400 { return "\(s / 86400) d \(s % 86400 / 3600) h" }
    if s >= 3600 { return "\(s / 3600) h \(String(format: "%02d", s % 3600 / 60)) min" }
    if s >= 60 { return "\(s / 60) min \(String(format: "%02d", s % 60)) s" }
    return "\(s) s"
}
